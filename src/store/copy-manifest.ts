// The list a COPY snapshot keeps of the files it can lend to the next snapshot of the same COPY
// (written by worker/file/reuse.ts, read again there and by image/layer-splice.ts). It lives
// beside the snapshot, so it is store data that both stations read.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Digest } from '../graph/ops.js';
import type { Store } from './store.js';

/** Content digest, uid, gid, permission bits of one lendable file, by its path in the snapshot. */
export type CopyManifestRow = [digest: Digest, uid: number, gid: number, mode: number];

export interface CopyManifest {
  v: 1;
  files: Record<string, CopyManifestRow>;
  /** The snapshot files were linked from, if any were (its layer's entries may be spliced: image/layer-splice.ts). */
  from?: string;
}

/** Its file name in the snapshot's folder. */
export const REUSE_MANIFEST = 'copy-files.json';

/**
 * Manifests read in this process, by store and snapshot: a snapshot never changes once committed,
 * and a rebuilt COPY reads its previous snapshot's twice (the copy lends from it, then the layer
 * writer splices its tar), 20,000 rows each for a big context.
 */
const read = new Map<string, CopyManifest | undefined>();

/** The manifest of snapshot `id`; undefined when it has none (pruned, not a COPY, or older). */
export function readCopyManifest(store: Store, id: string): CopyManifest | undefined {
  const k = `${store.root}\0${id}`;
  if (read.has(k)) return read.get(k);
  let m: CopyManifest | undefined;
  try {
    m = JSON.parse(readFileSync(join(store.snapshotDir(id), REUSE_MANIFEST), 'utf8')) as CopyManifest;
    if (m.v !== 1 || typeof m.files !== 'object' || m.files === null) m = undefined;
  } catch {
    return undefined; // not kept: the snapshot may be committed later in this process
  }
  read.set(k, m);
  return m;
}
