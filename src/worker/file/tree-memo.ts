// A rebuild's quick check of a COPY/ADD from the build context. Its content key needs every
// selected file's metadata, and each lstat from Node costs ~5 us before the JIT warms up, more
// than the rest of a cached build of 5,000 files. native/build/kiln-treestat walks the same
// trees in one spawn; when every entry's metadata is byte for byte what it was when the key
// was last computed, that key is the answer, and no file is looked at from Node. Anything
// else (a missing helper, an error, a changed entry, a wildcard) is the full computation,
// which reports errors properly and records the new fingerprint.
//
// Remembered per op and context in the store's filehash/ folder (a cache like the digest
// tables: kiln prune --all drops it, and losing it costs one full computation).

import { childProcess } from '../../util/lazy-modules.js';
import { readFile, mkdir, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { CopyAction, Digest, FileOp } from '../../graph/ops.js';
import type { ResolvedInput, WorkerContext } from '../types.js';
import { canonicalJson, hexOf, isDigest, sha256 } from '../../util/digest.js';
import { packageRoot } from '../../util/package-root.js';
import { openSource, expandSources } from './sources.js';
import { hasWildcard } from './patterns.js';

// KILN_TREESTAT as KILN_SANDBOX_HELPER: another build of the program (tests point it at nothing).
const treestatPath = process.env.KILN_TREESTAT ?? join(packageRoot(), 'native', 'build', 'kiln-treestat');

/**
 * A tree whose newest change is this recent is not remembered: a second write within the
 * clock's granularity could leave every timestamp as it was.
 */
const SETTLE_MS = 2000;

/**
 * Selections smaller than this are not remembered: a spawn costs ~3 ms, about what Node takes
 * to look at this many files itself.
 */
const MIN_ENTRIES = 256;

interface MemoFile {
  version: 1;
  fingerprint: string;
  key: Digest;
  /** Per source match, in order: the folders the selection skipped whole. */
  pruned: string[][];
}

export interface TreeMemo {
  /** The op's content key when nothing it reads changed since it was remembered. */
  key?: Digest;
  /**
   * Records `key` for the trees as they are now (the selection's skipped folders with it);
   * `entries`, the number of entries the selection has, decides whether it is worth it.
   */
  remember(key: Digest, pruned: string[][], entries: number): Promise<void>;
}

interface Walk {
  fingerprint: string;
  newestMs: number;
}

/** The memo of an op whose every COPY reads plain paths of the build context; else undefined. */
export async function openTreeMemo(op: FileOp, inputs: ResolvedInput[], ctx: WorkerContext): Promise<TreeMemo | undefined> {
  const copies = op.actions.filter((a): a is CopyAction => a.action === 'copy');
  if (copies.length === 0 || op.actions.some((a) => a.action === 'download')) return undefined;
  const contexts: Array<{ dir: string; exclude: string[] }> = [];
  for (const a of copies) {
    const input = inputs[a.from];
    if (input?.kind !== 'context' || a.src.some(hasWildcard)) return undefined;
    contexts.push({ dir: input.dir, exclude: input.excludePatterns });
  }

  const hosts: string[] = [];
  try {
    for (const a of copies) {
      const src = openSource(inputs[a.from], ctx.store, a.from, ctx.stepMemo);
      for (const m of await expandSources(a, src)) hosts.push(m.entry.host);
    }
  } catch {
    return undefined; // the full computation names the missing source
  }
  const identity = sha256(canonicalJson({ version: 1, actions: op.actions, contexts, store: ctx.store.root }));
  const file = ctx.store.path('filehash', `tree-${hexOf(identity)}.json`);
  const saved = await readMemo(file);

  const walkAll = (pruned: string[][] | undefined): Walk | undefined => walkTrees(identity, hosts, pruned);
  const now = saved && walkAll(saved.pruned);
  const settledBefore = Date.now() - SETTLE_MS;
  return {
    key: now && now.fingerprint === saved.fingerprint ? saved.key : undefined,
    async remember(key, pruned, entries) {
      if (entries < MIN_ENTRIES) {
        if (saved) await rm(file, { force: true }); // shrank: not worth a walk per build now
        return;
      }
      // The walk made before the key was computed, when it skipped the same folders: a walk
      // made after could see a file newer than the content the key was computed from.
      const walk = now && JSON.stringify(pruned) === JSON.stringify(saved.pruned) ? now : walkAll(pruned);
      if (!walk || walk.newestMs > settledBefore) return;
      const body: MemoFile = { version: 1, fingerprint: walk.fingerprint, key, pruned };
      await mkdir(ctx.store.path('filehash'), { recursive: true });
      await ctx.store.writeFileAtomic(file, JSON.stringify(body), { durable: false });
    },
  };
}

async function readMemo(file: string): Promise<MemoFile | undefined> {
  try {
    const m = JSON.parse(await readFile(file, 'utf8')) as MemoFile;
    if (m.version === 1 && typeof m.fingerprint === 'string' && isDigest(m.key) && Array.isArray(m.pruned)) return m;
  } catch {
    // missing or damaged: only a cache
  }
  return undefined;
}

/** Every entry's metadata under `hosts`, skipping each match's pruned folders, hashed. */
function walkTrees(identity: string, hosts: string[], pruned: string[][] | undefined): Walk | undefined {
  const args: string[] = [];
  hosts.forEach((h, i) => {
    args.push(h);
    for (const p of pruned?.[i] ?? []) args.push('-x', p);
  });
  const r = childProcess().spawnSync(treestatPath, args, { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  if (r.status !== 0 || !r.stdout || r.stdout.length < 12) return undefined;
  const out = r.stdout;
  const newestMs = Number(out.readBigInt64LE(0)) * 1000 + out.readUInt32LE(8) / 1e6;
  // The folders walked count too: a symlink on the way retargeted elsewhere is a change.
  const fingerprint = createHash('sha256').update(identity).update(JSON.stringify(hosts)).update(out.subarray(12)).digest('hex');
  return { fingerprint, newestMs };
}
