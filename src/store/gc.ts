// Store maintenance: what uses the space (du), whether everything is intact (verify), and
// removing what is no longer needed (prune). Images named in refs/ are never pruned: their
// manifests, configs and layer blobs stay. Snapshots and cache records are build cache, removed
// least recently used first. Everything is deleted by first renaming it into tmp/, so a reader
// never sees half a snapshot, and a crash mid-prune leaves only tmp/ debris for the next sweep.

import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { lstat, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Digest } from '../graph/ops.js';
import { isDigest } from '../util/digest.js';
import { KilnError } from '../util/errors.js';
import { fileStream, namesIn } from '../util/fs.js';
import { removeTree, type SnapshotMeta, type Store } from './store.js';
import { sweepStaleTemp } from './sweep.js';
import { hashFile } from './filehash-cache.js';
import { SHA256_STATE_BYTES } from '../util/sha256-resumable.js';
import { layerHasher, type HashCheckpoint } from '../util/tar/hash.js';

export interface UsageEntry {
  kind: UsageKind;
  count: number;
  bytes: number;
}

/**
 * What `kiln du` reports, and the store folders each kind is made of: every folder of the store
 * that holds data (locks/ and users/ hold only empty marker files while kiln runs).
 */
export const USAGE_KINDS = {
  blobs: ['blobs/sha256'],
  snapshots: ['snapshots'],
  'cache records': ['cache'],
  'cache mounts': ['mounts'],
  'file digests': ['filehash'],
  // --explain's account of each step of the last build of each Dockerfile (and its file lists)
  'step records': ['explain'],
  // which snapshot a layer's diffID, or the latest run of a step, points to
  'layer pointers': ['diffids', 'lineage'],
  refs: ['refs'],
  tmp: ['tmp'],
} as const;
export type UsageKind = keyof typeof USAGE_KINDS;

/** Bytes under `dir`, each inode counted once (hard links inside layers are common). */
export async function treeBytes(dir: string, seen = new Set<string>()): Promise<number> {
  let total = 0;
  let st;
  try {
    st = await lstat(dir);
  } catch {
    return 0;
  }
  const key = `${st.dev}:${st.ino}`;
  if (seen.has(key)) return 0;
  seen.add(key);
  total += st.blocks * 512;
  if (st.isDirectory()) for (const n of await readdir(dir)) total += await treeBytes(join(dir, n), seen);
  return total;
}

export async function storeUsage(store: Store): Promise<UsageEntry[]> {
  const out: UsageEntry[] = [];
  for (const [kind, dirs] of Object.entries(USAGE_KINDS) as Array<[UsageKind, readonly string[]]>) {
    const seen = new Set<string>();
    let count = 0;
    let bytes = 0;
    for (const rel of dirs) {
      const list = await namesIn(store.path(rel));
      count += list.length;
      for (const n of list) bytes += await treeBytes(store.path(rel, n), seen);
    }
    out.push({ kind, count, bytes });
  }
  return out;
}

// ---------------------------------------------------------------- reachability

interface DocLike {
  manifests?: Array<{ digest: string }>;
  config?: { digest: string };
  layers?: Array<{ digest: string }>;
}

/** Blobs reachable from the refs (manifests, indexes, configs, layers), and problems found on the way. */
export async function reachableBlobs(store: Store): Promise<{ blobs: Set<string>; diffIds: Set<string>; problems: string[] }> {
  const blobs = new Set<string>();
  const diffIds = new Set<string>();
  const problems: string[] = [];
  const visit = async (digest: string, from: string, optional: boolean): Promise<void> => {
    if (blobs.has(digest)) return;
    if (!isDigest(digest) || !(await store.hasBlob(digest))) {
      if (!optional) problems.push(`${from}: blob ${digest} is missing`);
      return;
    }
    blobs.add(digest);
    let doc: DocLike & { rootfs?: { diff_ids?: string[] } };
    try {
      doc = JSON.parse((await store.readBlob(digest)).toString('utf8')) as typeof doc;
    } catch (err) {
      problems.push(`${from}: ${digest} cannot be read: ${(err as Error).message}`);
      return;
    }
    if (Array.isArray(doc.manifests)) {
      for (const m of doc.manifests) await visit(m.digest, `index ${digest}`, true); // other platforms may be absent
      return;
    }
    if (!Array.isArray(doc.layers) || typeof doc.config?.digest !== 'string') return; // a config: a leaf
    blobs.add(doc.config.digest);
    if (!(await store.hasBlob(doc.config.digest as Digest))) problems.push(`manifest ${digest}: config blob ${doc.config.digest} is missing`);
    else {
      try {
        const cfg = JSON.parse((await store.readBlob(doc.config.digest as Digest)).toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
        for (const d of cfg.rootfs?.diff_ids ?? []) diffIds.add(d);
      } catch (err) {
        problems.push(`manifest ${digest}: config ${doc.config.digest} cannot be read: ${(err as Error).message}`);
      }
    }
    for (const l of doc.layers) {
      if (!(await store.hasBlob(l.digest as Digest))) problems.push(`manifest ${digest}: layer blob ${l.digest} is missing`);
      blobs.add(l.digest);
    }
  };
  for (const ref of await store.listRefs()) await visit(ref.digest, `ref ${ref.name}`, false);
  return { blobs, diffIds, problems };
}

// ---------------------------------------------------------------- verify

export interface VerifyReport {
  blobs: number;
  snapshots: number;
  refs: number;
  problems: string[];
  warnings: string[];
}

/**
 * A layer tar's digest, hashed as it was when it was made: the states saved on the way must be
 * the ones recorded (a later COPY resumes from them), else their offsets are returned.
 */
async function digestCheckingStates(path: string, recorded: HashCheckpoint[]): Promise<{ digest: string; wrong: number[] }> {
  const h = layerHasher();
  if (!h) return { digest: await hashFile(path), wrong: [] };
  await pipeline(fileStream(path), h.stream, new Writable({ write: (_chunk, _enc, cb) => cb() }));
  const mine = new Map((await h.checkpoints()).map((c) => [c.offset, c.state]));
  return { digest: await h.digest(), wrong: recorded.filter((c) => mine.get(c.offset) !== c.state).map((c) => c.offset) };
}

export async function verifyStore(store: Store): Promise<VerifyReport> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const snaps = await store.listSnapshots();
  const metas = new Map<string, SnapshotMeta | undefined>();
  const statesOf = new Map<string, { id: string; states: HashCheckpoint[] }>();
  for (const id of snaps) {
    const meta = await store.getSnapshot(id);
    metas.set(id, meta);
    if (meta?.diffId && meta.hashStates?.length) statesOf.set(meta.diffId, { id, states: meta.hashStates });
  }
  const blobNames = await namesIn(store.path('blobs', 'sha256'));
  for (const n of blobNames) {
    const want = `sha256:${n}`;
    if (!isDigest(want)) {
      problems.push(`blobs/sha256/${n}: not a sha256 name`);
      continue;
    }
    const path = store.path('blobs', 'sha256', n);
    const saved = statesOf.get(want);
    const { digest: got, wrong } = saved ? await digestCheckingStates(path, saved.states) : { digest: await hashFile(path), wrong: [] };
    if (got !== want) problems.push(`blob ${want} is corrupt (its bytes hash to ${got})`);
    else for (const off of wrong) problems.push(`snapshot ${saved!.id}: the hash state saved at offset ${off} is not its layer's`);
  }
  for (const id of snaps) {
    const meta = metas.get(id);
    if (!meta) {
      problems.push(`snapshot ${id}: meta.json missing or unreadable`);
      continue;
    }
    if (meta.id !== id) problems.push(`snapshot ${id}: meta.json names ${meta.id}`);
    try {
      if (!(await stat(store.snapshotFs(id))).isDirectory()) problems.push(`snapshot ${id}: fs is not a folder`);
    } catch {
      problems.push(`snapshot ${id}: fs folder missing`);
    }
    if (meta.diffId !== undefined && !isDigest(meta.diffId)) problems.push(`snapshot ${id}: bad diffId ${meta.diffId}`);
    for (const [c, rec] of Object.entries(meta.blobs ?? {})) {
      if (rec && !(await store.hasBlob(rec.digest))) warnings.push(`snapshot ${id}: its ${c} blob ${rec.digest} was pruned (it is made again when needed)`);
    }
    if (meta.source === 'layer' && Object.keys(meta.blobs ?? {}).length === 0) warnings.push(`snapshot ${id}: image layer without a recorded blob`);
    const states = meta.hashStates ?? [];
    states.forEach((c, i) => {
      const ordered = Number.isSafeInteger(c.offset) && c.offset > (i > 0 ? states[i - 1]!.offset : 0) && c.offset <= (meta.size ?? 0);
      if (!ordered || typeof c.state !== 'string' || Buffer.from(c.state, 'base64').length !== SHA256_STATE_BYTES) {
        problems.push(`snapshot ${id}: bad saved hash state at offset ${c.offset}`);
      }
    });
  }
  const refs = await store.listRefs();
  const reach = await reachableBlobs(store);
  problems.push(...reach.problems);
  for (const n of (await namesIn(store.path('cache'))).filter((x) => /^[0-9a-f]{64}$/.test(x))) {
    try {
      const rec = JSON.parse(await readFile(store.path('cache', n), 'utf8')) as { snapshot: string | null };
      if (rec.snapshot !== null && !(await store.getSnapshot(rec.snapshot))) warnings.push(`cache record ${n.slice(0, 12)}: snapshot ${rec.snapshot} is gone (a miss, pruned next time)`);
    } catch {
      problems.push(`cache record ${n}: unreadable`);
    }
  }
  return { blobs: blobNames.length, snapshots: snaps.length, refs: refs.length, problems, warnings };
}

// ---------------------------------------------------------------- last use

async function lastUsed(store: Store, id: string): Promise<number> {
  let t = 0;
  for (const f of ['used', 'meta.json']) {
    try {
      t = Math.max(t, (await stat(join(store.snapshotDir(id), f))).mtimeMs);
    } catch {
      // absent
    }
  }
  return t;
}

// ---------------------------------------------------------------- prune

export interface PruneOptions {
  /** Remove every snapshot and cache record, not only unused ones. */
  all?: boolean;
  /** Keep this many bytes of build cache (snapshots), removing the least recently used beyond it. */
  keepStorage?: number;
  /** Only remove what was last used longer ago than this (milliseconds). */
  olderThanMs?: number;
  now?: number;
}

export interface PruneReport {
  snapshots: string[];
  cacheRecords: number;
  blobs: number;
  mounts: number;
  reclaimedBytes: number;
}

async function moveToTmpAndRemove(store: Store, path: string): Promise<void> {
  const grave = store.path('tmp', `${process.pid}-${randomBytes(6).toString('hex')}-prune`);
  try {
    await rename(path, grave);
  } catch {
    return; // someone else removed it
  }
  await removeTree(grave);
}

export async function pruneStore(store: Store, opts: PruneOptions = {}): Promise<PruneReport> {
  const now = opts.now ?? Date.now();
  const report: PruneReport = { snapshots: [], cacheRecords: 0, blobs: 0, mounts: 0, reclaimedBytes: 0 };
  await sweepStaleTemp(store.path('tmp'));
  const oldEnough = (t: number) => opts.olderThanMs === undefined || now - t >= opts.olderThanMs;

  // Cache records name the snapshots the solver may still reuse.
  const records = new Map<string, { snapshot: string | null; mtime: number }>();
  for (const n of (await namesIn(store.path('cache'))).filter((x) => /^[0-9a-f]{64}$/.test(x))) {
    try {
      const p = store.path('cache', n);
      const rec = JSON.parse(await readFile(p, 'utf8')) as { snapshot: string | null };
      records.set(n, { snapshot: rec.snapshot, mtime: (await stat(p)).mtimeMs });
    } catch {
      records.set(n, { snapshot: null, mtime: 0 });
    }
  }
  const referenced = new Set([...records.values()].map((r) => r.snapshot).filter((s): s is string => s !== null));

  const snaps: Array<{ id: string; used: number; bytes: number }> = [];
  for (const id of await store.listSnapshots()) snaps.push({ id, used: await lastUsed(store, id), bytes: 0 });
  const doomed = new Set<string>();
  for (const s of snaps) {
    if (!oldEnough(s.used)) continue;
    // Without --all only what no cache record can hand out again goes (e.g. layers of removed images).
    if (opts.all || !referenced.has(s.id)) doomed.add(s.id);
  }
  if (opts.keepStorage !== undefined) {
    const seen = new Set<string>();
    for (const s of snaps) s.bytes = await treeBytes(store.snapshotDir(s.id), seen);
    let total = snaps.filter((s) => !doomed.has(s.id)).reduce((n, s) => n + s.bytes, 0);
    for (const s of [...snaps].sort((a, b) => a.used - b.used)) {
      if (total <= opts.keepStorage) break;
      if (doomed.has(s.id) || !oldEnough(s.used)) continue;
      doomed.add(s.id);
      total -= s.bytes;
    }
  }
  for (const id of doomed) {
    report.reclaimedBytes += await treeBytes(store.snapshotDir(id));
    await moveToTmpAndRemove(store, store.snapshotDir(id));
    report.snapshots.push(id);
  }
  for (const [n, r] of records) {
    const dangling = r.snapshot !== null && (doomed.has(r.snapshot) || !(await store.getSnapshot(r.snapshot)));
    if (dangling || (opts.all && oldEnough(r.mtime))) {
      await rm(store.path('cache', n), { force: true });
      report.cacheRecords++;
    }
  }
  for (const dir of ['diffids', 'lineage']) {
    for (const n of await namesIn(store.path(dir))) {
      const id = (await readFile(store.path(dir, n), 'utf8').catch(() => '')).trim();
      if (!id || !(await store.getSnapshot(id))) await rm(store.path(dir, n), { force: true });
    }
  }
  if (opts.all) {
    // Digest tables of context files: only a cache (a re-read of each file brings them back).
    for (const n of await namesIn(store.path('filehash'))) {
      const p = store.path('filehash', n);
      if (oldEnough((await stat(p)).mtimeMs)) await rm(p, { force: true });
    }
    // --explain's records of earlier builds (and the file lists beside them): advisory, one
    // folder per Dockerfile and context, which nothing else ever removes.
    for (const n of await namesIn(store.path('explain'))) {
      const p = store.path('explain', n);
      if (oldEnough((await stat(p)).mtimeMs)) await rm(p, { recursive: true, force: true });
    }
    for (const n of await namesIn(store.path('mounts'))) {
      const p = store.path('mounts', n);
      if (!oldEnough((await stat(p)).mtimeMs)) continue;
      report.reclaimedBytes += await treeBytes(p);
      await moveToTmpAndRemove(store, p);
      report.mounts++;
    }
  }

  // Blobs: keep what refs reach and what surviving snapshots recorded as their layer blobs.
  const keep = (await reachableBlobs(store)).blobs;
  for (const id of await store.listSnapshots()) {
    const meta = await store.getSnapshot(id);
    for (const rec of Object.values(meta?.blobs ?? {})) if (rec) keep.add(rec.digest);
  }
  for (const n of await namesIn(store.path('blobs', 'sha256'))) {
    const d = `sha256:${n}`;
    if (keep.has(d)) continue;
    const p = store.path('blobs', 'sha256', n);
    const st = await stat(p).catch(() => undefined);
    if (!st || !oldEnough(st.mtimeMs)) continue;
    report.reclaimedBytes += st.blocks * 512;
    await rm(p, { force: true });
    report.blobs++;
  }
  return report;
}

export function parseSize(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?$/i.exec(text.trim());
  if (!m) throw new KilnError(`${flag}: "${text}" is not a size (like 500MB or 10GB)`, { exitCode: 2 });
  const unit = (m[2] ?? '').toLowerCase().replace(/b$/, '');
  const pow = { '': 0, k: 1, m: 2, g: 3, t: 4, ki: 1, mi: 2, gi: 3, ti: 4 }[unit];
  if (pow === undefined) throw new KilnError(`${flag}: unknown unit in "${text}"`, { exitCode: 2 });
  const base = unit.endsWith('i') ? 1024 : 1000;
  return Math.floor(Number(m[1]) * base ** pow);
}

export function parseDuration(text: string, flag: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms']!;
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== text.length) throw new KilnError(`${flag}: "${text}" is not a duration (like 30m, 24h or 1h30m)`, { exitCode: 2 });
  return total;
}

