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
//
// When the trees did change, the walk just made still answers every metadata question of the
// full computation (and of the copy after it): the views are filled from it, and Node looks at
// no file it listed. An lstat from Node, its Stats object and their garbage were most of the
// time of a rebuild's COPY of 20,000 files before any file was read.

import { childProcess } from '../../util/lazy-modules.js';
import { readFile, mkdir, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { CopyAction, Digest, FileOp } from '../../graph/ops.js';
import type { ResolvedInput, WorkerContext } from '../types.js';
import { canonicalJson, hexOf, isDigest, sha256 } from '../../util/digest.js';
import { packageRoot } from '../../util/package-root.js';
import { openSource, expandSources, type SourceRoot } from './sources.js';
import type { ViewEntry, WalkedEntry } from '../../store/rootfs-view.js';
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
  /** kiln-treestat's output past its first record. */
  listing: Buffer;
}

/** The memo of an op whose every COPY reads plain paths of the build context; else undefined. */
export async function openTreeMemo(op: FileOp, inputs: ResolvedInput[], ctx: WorkerContext): Promise<TreeMemo | undefined> {
  const copies = op.actions.filter((a): a is CopyAction => a.action === 'copy');
  if (copies.length === 0 || op.actions.some((a) => a.action === 'download' || a.action === 'git')) return undefined;
  const contexts: Array<{ dir: string; exclude: string[] }> = [];
  for (const a of copies) {
    const input = inputs[a.from];
    if (input?.kind !== 'context' || a.src.some(hasWildcard)) return undefined;
    contexts.push({ dir: input.dir, exclude: input.excludePatterns });
  }

  const hosts: string[] = [];
  const matches: Array<{ src: SourceRoot; entry: ViewEntry }> = [];
  try {
    for (const a of copies) {
      const src = openSource(inputs[a.from], ctx.store, a.from, ctx.stepMemo);
      for (const m of await expandSources(a, src)) {
        hosts.push(m.entry.host);
        matches.push({ src, entry: m.entry });
      }
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
  const unchanged = now !== undefined && now.fingerprint === saved!.fingerprint;
  if (now && !unchanged) {
    const walked = parseListing(now.listing, matches.length);
    if (walked) matches.forEach((m, i) => m.src.view.prefill(m.entry, walked[i]!, saved!.pruned[i] ?? []));
  }
  return {
    key: unchanged ? saved!.key : undefined,
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
  // A helper left from another version (a bare `tsc`, no `make`) writes another format.
  if (r.status !== 0 || !r.stdout || r.stdout.length < LISTING_START || r.stdout.readUInt32LE(0) !== TREESTAT_FORMAT) return undefined;
  const out = r.stdout;
  const newestMs = Number(out.readBigInt64LE(4)) * 1000 + out.readUInt32LE(12) / 1e6;
  const listing = out.subarray(LISTING_START);
  // The folders walked count too: a symlink on the way retargeted elsewhere is a change.
  const fingerprint = createHash('sha256').update(identity).update(JSON.stringify(hosts)).update(listing).digest('hex');
  return { fingerprint, newestMs, listing };
}

/** native/treestat/treestat.c's TREESTAT_FORMAT, and where its entries start (after the newest time). */
export const TREESTAT_FORMAT = 2;
export const LISTING_START = 16;

/** Bytes of an entry's record after its path (native/treestat/treestat.c). */
const RECORD_TAIL = 4 * 3 + 8 + 12 * 2 + 8 * 3 + 4;

/**
 * The entries of each walked match, in the walk's order; undefined when the output is not
 * what this code reads (another build of the program).
 */
export function parseListing(buf: Buffer, matches: number): WalkedEntry[][] | undefined {
  const out: WalkedEntry[][] = [];
  let off = 0;
  const u64 = (at: number) => buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 0x1_0000_0000;
  // As Node's Stats makes its *Ms fields, so that digest tables match either way.
  const ms = (at: number) => u64(at) * 1000 + buf.readUInt32LE(at + 8) / 1e6;
  while (off < buf.length) {
    if (off + 4 > buf.length || buf.readUInt32LE(off) !== out.length) return undefined;
    off += 4;
    const entries: WalkedEntry[] = [];
    out.push(entries);
    while (off < buf.length && (entries.length === 0 || nextIsEntry(buf, off, out.length))) {
      const len = buf.readUInt32LE(off);
      const at = off + 4 + len;
      if (at + RECORD_TAIL > buf.length) return undefined;
      entries.push({
        rel: buf.toString('utf8', off + 4, at),
        stats: {
          mode: buf.readUInt32LE(at),
          uid: buf.readUInt32LE(at + 4),
          gid: buf.readUInt32LE(at + 8),
          size: u64(at + 12),
          mtimeMs: ms(at + 20),
          ctimeMs: ms(at + 32),
          ino: u64(at + 44),
          rdev: u64(at + 52),
          dev: u64(at + 60),
          nlink: buf.readUInt32LE(at + 68),
        },
      });
      off = at + RECORD_TAIL;
    }
  }
  return out.length === matches ? out : undefined;
}

/**
 * Whether the record at `off` is another entry of the current match rather than the header of
 * match `next`: a header is that index followed by the match's own record, whose path is empty
 * (an entry's never is, nor does a path hold a zero byte).
 */
function nextIsEntry(buf: Buffer, off: number, next: number): boolean {
  return !(off + 8 <= buf.length && buf.readUInt32LE(off) === next && buf.readUInt32LE(off + 4) === 0);
}
