// --cache-from / --cache-to. Not implemented yet: refuse clearly rather than build without
// the cache the user asked for.

import type { Store } from '../store/store.js';
import type { BuildGraph, Digest } from '../graph/ops.js';
import type { SolveResult } from '../solver/solve.js';
import { KilnError } from '../util/errors.js';

export interface CacheTransferOptions {
  insecureRegistries: string[];
  signal: AbortSignal;
}

export async function resolveCacheImports(_store: Store, specs: string[], _opts: CacheTransferOptions): Promise<void> {
  if (specs.length > 0) throw new KilnError(`--cache-from: cache import is not supported yet (${specs.join(' ')})`, { exitCode: 2 });
}

export async function exportCache(
  _store: Store,
  specs: string[],
  _opts: CacheTransferOptions & { graph: BuildGraph; result: SolveResult; manifestDigest: Digest },
): Promise<void> {
  if (specs.length > 0) throw new KilnError(`--cache-to: cache export is not supported yet (${specs.join(' ')})`, { exitCode: 2 });
}
