// The file worker: COPY, ADD, WORKDIR's mkdir and heredoc files. It stages only the diff
// (new entries plus the directories above them, copied up with their metadata) in a folder
// under the store's tmp/, and commits it as the op's snapshot. Every entry it writes gets one
// fixed mtime (SOURCE_DATE_EPOCH, else the Unix epoch), so the same inputs give the same layer
// bytes on any machine and from any checkout.

import { createHash } from 'node:crypto';
import { readdir, readlink, rm, chmod } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import pLimit from 'p-limit';
import type { CopyAction, Digest, DownloadAction, FileAction, FileOp, MkdirAction, MkfileAction } from '../../graph/ops.js';
import type { ResolvedInput, StepOutput, WorkerContext } from '../types.js';
import { canonicalJson, sha256 } from '../../util/digest.js';
import { KilnError } from '../../util/errors.js';
import { removeTree } from '../../store/store.js';
import { BIG_FILE, FileHashTable, digestImmutable } from '../../store/filehash-cache.js';
import { Breather } from '../../util/event-loop.js';
import { DiffWriter, joinPath } from './diff-writer.js';
import { openSource, expandSources, selectTree, flatten, type SourceRoot } from './sources.js';
import type { ViewEntry } from '../../store/rootfs-view.js';
import { IgnoreMatcher } from './patterns.js';
import { planCopy, runCopyPlan, resolveCopyOptions, parentMeta, unpackArchive, warnInOutput } from './copy.js';
import { parseChmod, resolveChown } from './owner-mode.js';
import { downloadToBlob, fileNameFromUrl } from './download.js';
import { gitCommit, runGit } from './git-action.js';
import { GIT_REF, redactRemote } from '../git/ref.js';
import { isArchiveFile } from './archive.js';
import { CopyReuse } from './reuse.js';
import { openTreeMemo } from './tree-memo.js';
import { REUSE_MANIFEST } from '../../store/copy-manifest.js';
import type { Store } from '../../store/store.js';

function destLayers(inputs: ResolvedInput[]): string[] {
  const base = inputs[0];
  if (!base) return [];
  if (base.kind !== 'state') throw new Error('file op: input 0 must be a filesystem state');
  return [...base.layers];
}

export async function runFile(op: FileOp, inputs: ResolvedInput[], ctx: WorkerContext, snapshotId: string): Promise<StepOutput> {
  const stage = await ctx.store.tempDir('file');
  let w: DiffWriter | undefined;
  try {
    await chmod(stage, 0o755);
    const layers = destLayers(inputs).map((id) => ctx.store.snapshotFs(id));
    // COPY --link makes its layer against an empty filesystem, so the layer does not depend on
    // the base and can be reused on any base: just the files and plain parent directories.
    const linked = op.actions.length > 0 && op.actions.every((a) => a.action === 'copy' && a.link);
    w = new DiffWriter(stage, linked ? [] : layers, ctx.sourceDateEpoch ?? 0, layers);
    const lineage = op.actions.some((a) => a.action === 'copy') ? lineageOf(op, inputs, w.mtime) : undefined;
    if (lineage) w.reuse = ctx.reuseEarlierFiles === false ? CopyReuse.fresh() : await CopyReuse.open(ctx.store, lineage);
    for (const action of op.actions) {
      ctx.signal.throwIfAborted();
      await runAction(action, inputs, ctx, w);
      await w.settle(); // the next action sees this one's files in place
    }
    await w.finish();
    if ((await readdir(stage)).length === 0) {
      await rm(stage, { recursive: true, force: true });
      return { snapshot: null };
    }
    await ctx.store.commitSnapshot(snapshotId, stage, { source: 'file' }, w.reuse ? { [REUSE_MANIFEST]: w.reuse.manifest() } : {});
    if (lineage) await ctx.store.setLineage(lineage, snapshotId);
    return { snapshot: snapshotId };
  } catch (err) {
    await w?.abandon();
    await removeTree(stage);
    throw err;
  }
}

/**
 * What makes two runs of a COPY "the same COPY" for reuse.ts: the op, the mtime stamp and the
 * context folder it reads, but neither the destination's layers nor a source stage's, since a
 * rebuilt base or stage is just when the earlier files are worth finding. (Nothing here has to
 * be exact: a file is linked only when its digest, owner and mode are the ones a copy gives.)
 */
function lineageOf(op: FileOp, inputs: ResolvedInput[], mtime: number): Digest {
  const sources = inputs.map((i) => (i.kind === 'context' ? { dir: i.dir } : 'state'));
  return sha256(canonicalJson({ v: 1, op, inputs: sources, mtime }));
}

async function runAction(action: FileAction, inputs: ResolvedInput[], ctx: WorkerContext, w: DiffWriter): Promise<void> {
  const tempDir = () => ctx.store.tempDir('file-extract');
  switch (action.action) {
    case 'copy': {
      const src = openSource(inputs[action.from], ctx.store, action.from, ctx.stepMemo);
      const plan = await planCopy(action, src, w);
      const opts = await resolveCopyOptions(action, src.context !== undefined, w, ctx, tempDir);
      const digests = sourceDigests(src, ctx.store);
      await digests.open();
      await runCopyPlan(plan, w, { ...opts, digestOf: digests.digestOf, knownDigest: digests.known });
      await digests.save();
      return;
    }
    case 'mkdir':
      return runMkdir(action, w);
    case 'mkfile':
      return runMkfile(action, w, ctx);
    case 'download':
      return runDownload(action, ctx, w, tempDir);
    case 'git':
      return runGit(action, ctx, w);
  }
}

async function runMkdir(action: MkdirAction, w: DiffWriter): Promise<void> {
  // Only WORKDIR makes folders: for the current USER, whose name the image need not know.
  const owner = action.chown ? await resolveChown(action.chown, w.names) : { uid: 0, gid: 0 };
  const loc = await w.mergedView().locate(action.path, true);
  if (loc.entry) {
    if (loc.entry.type !== 'dir') throw new KilnError(`cannot make directory ${action.path}: a file is in the way`);
    return; // already there: nothing changes (and no layer when nothing else does)
  }
  await w.ensureDir(loc.path, { ...owner, mode: action.mode & 0o7777 });
}

async function runMkfile(action: MkfileAction, w: DiffWriter, ctx: WorkerContext): Promise<void> {
  const owner = action.chown ? await resolveChown(action.chown, w.names, warnInOutput(ctx)) : { uid: 0, gid: 0 };
  const mode = action.chmod ? parseChmod(action.chmod)(action.mode & 0o7777, false) : action.mode & 0o7777;
  const loc = await w.mergedView().locate(action.path, true);
  if (loc.entry?.type === 'dir') throw new KilnError(`cannot write file ${action.path}: it is a directory`);
  await w.ensureParents(loc.path, { ...owner, mode: 0o755 });
  await w.writeFileData(loc.path, action.content, { ...owner, mode });
}

async function runDownload(action: DownloadAction, ctx: WorkerContext, w: DiffWriter, tempDir: () => Promise<string>): Promise<void> {
  const digest = await downloadToBlob(action.url, ctx, action.checksum);
  const blob = ctx.store.blobPath(digest);
  const opts = await resolveCopyOptions(action, true, w, ctx, tempDir);
  const loc = await w.mergedView().locate(action.dest, true);
  const intoDir = action.dest.endsWith('/') || loc.entry?.type === 'dir';
  if (action.unpack === true && (await isArchiveFile(blob))) {
    await unpackArchive(blob, loc.path, w, opts);
    return;
  }
  const target = intoDir ? joinPath(loc.path, fileNameFromUrl(action.url)) : loc.path;
  if (loc.entry && loc.entry.type !== 'dir' && action.dest.endsWith('/')) {
    throw new KilnError(`ADD ${action.url}: destination ${action.dest} is not a directory`);
  }
  await w.ensureParents(target, parentMeta(opts));
  // Downloads are private to their owner unless --chmod says otherwise (Docker's 0600).
  const mode = opts.mode ? opts.mode(0o600, false) : 0o600;
  await w.writeFileFrom(target, blob, { uid: opts.owner?.uid ?? 0, gid: opts.owner?.gid ?? 0, mode });
}

// ------------------------------------------------------------------ content key

/** One selected source file as it enters the cache key (and --explain's comparisons). */
export interface SourceFileRecord {
  /** Path in the source (context-relative or stage-absolute without the leading `/`). */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other' | typeof GIT_REF;
  mode: number;
  uid: number;
  gid: number;
  linkTarget?: string;
  digest?: Digest;
}

export interface ActionSources {
  action: number;
  kind: FileAction['action'];
  files?: SourceFileRecord[];
  /** Per source match of a copy: the folders its selection skipped whole (never in the key). */
  pruned?: string[][];
  content?: Digest;
}

/** What one COPY/ADD reads: its files, and per source match the folders skipped whole. */
interface CopySelection {
  files: SourceFileRecord[];
  pruned: string[][];
}

/**
 * Content digests of a source's files, remembered per folder: the context, or each snapshot
 * layer (immutable, so a COPY --from of a big stage is read once, not once per build).
 */
function sourceDigests(src: SourceRoot, store: Store): {
  /**
   * Loads the context's table before a walk: until it is loaded, `known` answers nothing, and
   * every file of the walk went the asynchronous way (a promise each, 20,000 for a big context).
   */
  open: () => Promise<void>;
  digestOf: (e: ViewEntry) => Promise<Digest>;
  /** The digest when it is known without reading the file or waiting (most files of a rebuild). */
  known: (e: ViewEntry) => Digest | undefined;
  save: () => Promise<void>;
} {
  const tables = new Map<string, FileHashTable>();
  const folderOf = (e: ViewEntry) => (src.context ? src.context.dir : src.view.layers.find((l) => e.host.startsWith(l + '/')));
  const digestOf = async (e: ViewEntry): Promise<Digest> => {
    const folder = folderOf(e);
    if (!folder) return digestImmutable(e.host, e.stats);
    let t = tables.get(folder);
    if (!t) {
      t = await FileHashTable.open(store, folder);
      tables.set(folder, t);
    }
    return t.digest(e.host.slice(folder.length + 1), e.host, e.stats);
  };
  const open = async () => {
    if (src.context) tables.set(src.context.dir, await FileHashTable.open(store, src.context.dir));
  };
  const known = (e: ViewEntry): Digest | undefined => {
    const folder = folderOf(e);
    if (folder === undefined) return undefined;
    let t = tables.get(folder);
    if (!t && !src.context) {
      // A layer's table, read the first time the walk meets one of its files.
      t = FileHashTable.openSync(store, folder);
      if (t) tables.set(folder, t);
    }
    return t?.known(e.host.slice(folder.length + 1), e.stats);
  };
  const save = async () => {
    for (const t of tables.values()) await t.save();
  };
  return { open, digestOf, known, save };
}

// The cache key and --explain's record both list a COPY's files: with a step memo, once.
function copySources(action: CopyAction, inputs: ResolvedInput[], ctx: WorkerContext): Promise<CopySelection> {
  const memo = ctx.stepMemo;
  let files = memo?.get(action) as Promise<CopySelection> | undefined;
  if (!files) {
    files = readCopySources(action, inputs, ctx);
    if (memo) {
      memo.set(action, files);
      files.catch(() => memo.delete(action)); // a failure is reported by the caller, and not kept
    }
  }
  return files;
}

/** How long the walk goes on before the hashing beside it gets a turn of the event loop. */
const HASH_TURN_MS = 3;

async function readCopySources(action: CopyAction, inputs: ResolvedInput[], ctx: WorkerContext): Promise<CopySelection> {
  const src: SourceRoot = openSource(inputs[action.from], ctx.store, action.from, ctx.stepMemo);
  const { open, digestOf, known, save } = sourceDigests(src, ctx.store);
  await open();
  const exclude = new IgnoreMatcher(action.exclude);
  const out: SourceFileRecord[] = [];
  const pruned: string[][] = [];
  // Files unknown to the tables hash side by side, off the event loop (small ones in native
  // batches, big ones a few at a time); the walk gives the event loop a turn every few
  // milliseconds so their reads and batches go on while it walks.
  const bigLimit = pLimit(Math.max(2, availableParallelism()));
  const digests: Promise<void>[] = [];
  const breather = new Breather(HASH_TURN_MS);
  for (const m of await expandSources(action, src)) {
    const skipped: string[] = [];
    pruned.push(skipped);
    const tree = await selectTree(src, m, exclude, skipped);
    if (!tree) continue;
    for (const node of flatten(tree)) {
      ctx.signal.throwIfAborted();
      const e = node.entry;
      const rel = node.sub === '' ? m.rel : m.rel === '' ? node.sub : `${m.rel}/${node.sub}`;
      const rec: SourceFileRecord = {
        path: rel,
        type: e.type,
        // The context folder's own mode never reaches the image.
        mode: src.context && e.path === '/' ? 0o755 : e.stats.mode & 0o7777,
        // The context's owners never reach the image (they become 0:0), so they never count.
        uid: src.context ? 0 : e.stats.uid,
        gid: src.context ? 0 : e.stats.gid,
      };
      if (e.type === 'symlink') rec.linkTarget = await readlink(e.host);
      else if (e.type === 'file') {
        const d = known(e);
        if (d) rec.digest = d;
        else {
          const digest = e.stats.size >= BIG_FILE ? bigLimit(() => digestOf(e)) : digestOf(e);
          const filled = digest.then((x) => void (rec.digest = x));
          filled.catch(() => undefined); // reported by the Promise.all below, unless the walk failed first
          digests.push(filled);
          const pause = breather.due();
          if (pause) await pause;
        }
      } else if (e.type === 'other') rec.mode = e.stats.mode;
      out.push(rec);
    }
  }
  await Promise.all(digests);
  await save();
  return { files: out, pruned };
}

/**
 * What each action reads, file by file: the input of the cache key, and what --explain compares
 * between two builds.
 */
export async function fileOpSources(op: FileOp, inputs: ResolvedInput[], ctx: WorkerContext): Promise<ActionSources[]> {
  const out: ActionSources[] = [];
  for (const [i, a] of op.actions.entries()) {
    switch (a.action) {
      case 'copy':
        out.push({ action: i, kind: a.action, ...(await copySources(a, inputs, ctx)) });
        break;
      case 'mkfile':
        out.push({ action: i, kind: a.action, content: sha256(a.content) });
        break;
      case 'download':
        out.push({ action: i, kind: a.action, content: a.checksum ?? (await downloadToBlob(a.url, ctx)) });
        break;
      case 'mkdir':
        out.push({ action: i, kind: a.action });
        break;
      case 'git':
        out.push({ action: i, kind: a.action, content: sha256(await gitCommit(a, ctx)) });
        break;
    }
  }
  return out;
}

/** The checksum of exactly the files an op reads (never their mtimes), for the cache key. */
export async function fileOpContentKey(op: FileOp, inputs: ResolvedInput[], ctx: WorkerContext): Promise<Digest> {
  const memo = await openTreeMemo(op, inputs, ctx);
  if (memo?.key) return memo.key;
  const sources = await fileOpSources(op, inputs, ctx);
  const key = contentKeyDigest(sources);
  const entries = sources.reduce((n, a) => n + (a.files?.length ?? 0), 0);
  await memo?.remember(key, sources.flatMap((a) => a.pruned ?? []), entries);
  return key;
}

/**
 * canonicalJson({ version: 1, sources }), written directly: the generic one copies every
 * record of every file to sort its keys. (Keys below are in sorted order; absent ones left out.)
 */
export function contentKeyJson(sources: ActionSources[]): string {
  return [...contentKeyPieces(sources)].join('');
}

/** Pieces of JSON gathered up to this many characters before they go to the hash. */
const HASH_PIECE = 1 << 16;

/**
 * sha256(contentKeyJson(sources)), hashed a piece at a time: the whole string and its 40,000
 * parts for 20,000 files lived long enough to be promoted, and collecting them was most of it.
 */
export function contentKeyDigest(sources: ActionSources[]): Digest {
  const h = createHash('sha256');
  let piece = '';
  for (const p of contentKeyPieces(sources)) {
    piece += p;
    if (piece.length >= HASH_PIECE) {
      h.update(piece);
      piece = '';
    }
  }
  return `sha256:${h.update(piece).digest('hex')}`;
}

function* contentKeyPieces(sources: ActionSources[]): Generator<string> {
  yield '{"sources":[';
  for (const [i, a] of sources.entries()) {
    if (i > 0) yield ',';
    yield `{"action":${JSON.stringify(a.action)}`;
    if (a.content !== undefined) yield `,"content":${JSON.stringify(a.content)}`;
    if (a.files !== undefined) {
      yield ',"files":[';
      for (let j = 0; j < a.files.length; j++) yield (j > 0 ? ',' : '') + fileRecordJson(a.files[j]!);
      yield ']';
    }
    yield `,"kind":${JSON.stringify(a.kind)}}`;
  }
  yield '],"version":1}';
}

function fileRecordJson(r: SourceFileRecord): string {
  let s = '{';
  if (r.digest !== undefined) s += `"digest":${jsonString(r.digest)},`;
  s += `"gid":${r.gid},`;
  if (r.linkTarget !== undefined) s += `"linkTarget":${jsonString(r.linkTarget)},`;
  return s + `"mode":${r.mode},"path":${jsonString(r.path)},"type":"${r.type}","uid":${r.uid}}`;
}

/** What JSON.stringify needs to escape in a string (a surrogate, paired or not, is left to it). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON.stringify(s), without its cost for the plain paths and digests that are most of a key. */
function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}


/** The files every COPY/ADD of the op selects, for --explain to name what changed. */
export async function listFileOpContent(op: FileOp, inputs: ResolvedInput[], ctx: WorkerContext): Promise<SourceFileRecord[]> {
  const out: SourceFileRecord[] = [];
  for (const a of op.actions) {
    if (a.action === 'copy') out.push(...(await copySources(a, inputs, ctx)).files);
    // A ref as --explain compares it: by the commit it named.
    if (a.action === 'git') out.push({ path: `${redactRemote(a.remote)}#${a.ref ?? 'HEAD'}`, type: GIT_REF, mode: 0, uid: 0, gid: 0, digest: await gitCommit(a, ctx) as Digest });
  }
  return out;
}
