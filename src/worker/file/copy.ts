// COPY and ADD of local sources (the context, a stage, an image) into the staged diff.
// Destination rules, as BuildKit applies them:
// - a directory source copies its CONTENTS into the destination;
// - a file goes INTO the destination when it ends with `/` or is an existing directory
//   (symlinks on the way resolved inside the image), else it becomes the destination;
// - several sources are copied one after another, each seeing what the ones before it made: into
//   a destination without `/` that is not a folder, files replace each other and folders merge
//   (BuildKit has no "must end with /" rule; only Docker's legacy builder had);
// - --parents keeps each match's path (from the `./` pivot on) under the destination.

import { readlink } from 'node:fs/promises';
import type { CopyAction, Digest } from '../../graph/ops.js';
import type { ViewEntry } from '../../store/rootfs-view.js';
import { KilnError } from '../../util/errors.js';
import { turn } from '../../util/event-loop.js';
import { DiffWriter, joinPath, type EntryMeta } from './diff-writer.js';
import { IgnoreMatcher } from './patterns.js';
import { expandSources, selectTree, type SelectedNode, type SourceMatch, type SourceRoot } from './sources.js';
import { parseChmod, resolveChown, type ModeFn, type Owner } from './owner-mode.js';
import { isArchiveFile, extractArchiveInto } from './archive.js';
import type { WorkerContext } from '../types.js';

export interface CopyPlanItem {
  match: SourceMatch;
  tree: SelectedNode;
  /** Canonical destination of the match (the file itself, or the folder receiving a directory's contents). */
  target: string;
  /** ADD of a local archive: extract into `target` instead of copying. */
  extract: boolean;
}

function cleanAbsolute(p: string): string {
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') out.pop();
    else out.push(c);
  }
  return '/' + out.join('/');
}

export async function planCopy(action: CopyAction, src: SourceRoot, w: DiffWriter): Promise<CopyPlanItem[]> {
  const matches = await expandSources(action, src);
  const exclude = new IgnoreMatcher(action.exclude);
  const destSlash = action.dest.endsWith('/') || /\/\.?$/.test(action.dest) || action.dest === '.';
  const dest = await w.mergedView().locate(cleanAbsolute(action.dest), true);
  if (dest.entry && dest.entry.type !== 'dir' && destSlash) {
    throw new KilnError(`destination ${JSON.stringify(action.dest)} is not a directory`);
  }
  // What the destination is once the matches before this one are copied.
  let destIsDir = destSlash || dest.entry?.type === 'dir';
  const plan: CopyPlanItem[] = [];
  for (const m of matches) {
    const tree = await selectTree(src, m, exclude);
    if (!tree) continue;
    const extract = action.add && action.unpack !== false && m.entry.type === 'file' && (await isArchiveFile(m.entry.host));
    let target: string;
    if (action.parents) {
      target = m.keep === '' ? dest.path : cleanAbsolute(`${dest.path}/${m.keep}`);
    } else if (m.entry.type === 'dir' || extract) {
      target = dest.path;
      destIsDir = true;
    } else target = destIsDir ? joinPath(dest.path, m.name) : dest.path;
    plan.push({ match: m, tree, target, extract });
  }
  return plan;
}

export interface CopyOptions {
  /** The owner every entry gets; undefined keeps the source's owners (stage/image sources). */
  owner?: Owner;
  /** --chown was given (the context's default 0:0 is not). */
  chownGiven: boolean;
  mode?: ModeFn;
  signal: AbortSignal;
  tempDir: () => Promise<string>;
  /** Content digest of a source file, for linking unchanged files from the previous snapshot (reuse.ts). */
  digestOf?: (e: ViewEntry) => Promise<Digest>;
  /** The digest when known without reading the file (most files of a rerun). */
  knownDigest?: (e: ViewEntry) => Digest | undefined;
  /**
   * ADD of an archive: the folders (sub paths) its entries name. Docker's extractor merges such a
   * folder into one the destination has by giving it the entry's owner and mode.
   */
  namedDirs?: ReadonlySet<string>;
  /** The source is kiln's own scratch folder (an extracted archive): its files are moved, not copied. */
  moveFiles?: boolean;
}

export async function resolveCopyOptions(
  action: { chown?: CopyAction['chown']; chmod?: string },
  fromContext: boolean,
  w: DiffWriter,
  ctx: Pick<WorkerContext, 'signal' | 'onOutput'>,
  tempDir: () => Promise<string>,
): Promise<CopyOptions> {
  const owner = action.chown ? await resolveChown(action.chown, w.names, warnInOutput(ctx)) : fromContext ? { uid: 0, gid: 0 } : undefined;
  return { owner, chownGiven: action.chown !== undefined, mode: action.chmod ? parseChmod(action.chmod) : undefined, signal: ctx.signal, tempDir };
}

/** A warning as a line of the step's output (progress shows it; it is not part of any key). */
export function warnInOutput(ctx: Pick<WorkerContext, 'onOutput'>): (message: string) => void {
  return (message) => ctx.onOutput(Buffer.from(`warning: ${message}\n`), 'stderr');
}

/** Metadata for a directory COPY creates on the way to its destination. */
export function parentMeta(opts: CopyOptions): EntryMeta {
  return { uid: opts.owner?.uid ?? 0, gid: opts.owner?.gid ?? 0, mode: opts.mode ? opts.mode(0o755, true) : 0o755 };
}

function metaOf(node: SelectedNode, opts: CopyOptions): EntryMeta {
  const st = node.entry.stats;
  return {
    uid: opts.owner?.uid ?? st.uid,
    gid: opts.owner?.gid ?? st.gid,
    mode: opts.mode ? opts.mode(st.mode & 0o7777, node.entry.type === 'dir') : st.mode & 0o7777,
  };
}

export async function runCopyPlan(plan: CopyPlanItem[], w: DiffWriter, opts: CopyOptions): Promise<void> {
  const parents = parentMeta(opts);
  for (const item of plan) {
    if (item.extract) {
      await unpackArchive(item.match.entry.host, item.target, w, opts);
      continue;
    }
    await w.ensureParents(item.target, parents);
    // Hard links are kept within one source tree, as a tar of it would keep them.
    await copyTreeNode(item.tree, item.target, w, opts, new Map());
  }
}

/**
 * ADD's extraction of an archive (local, or downloaded with --unpack=true) into `target`. Its own
 * owners stay unless --chown says otherwise, and its modes stay whatever --chmod says: BuildKit's
 * unpacking takes an owner only, and makes missing folders 0755.
 */
export async function unpackArchive(archive: string, target: string, w: DiffWriter, opts: CopyOptions): Promise<void> {
  // (Its files are not the source's: nothing to look up digests of.)
  const archOpts: CopyOptions = { ...opts, owner: opts.chownGiven ? opts.owner : undefined, mode: undefined, digestOf: undefined, knownDigest: undefined, moveFiles: true };
  const links = new Map<string, string>();
  await extractArchiveInto(archive, target, w, archOpts, parentMeta({ ...opts, mode: undefined }), (n, t, namedDirs) =>
    copyTreeNode(n, t, w, { ...archOpts, namedDirs }, links),
  );
}

let copiedSinceYield = 0;

/**
 * Where an archive's folder goes when the destination has a non-directory in its place, as
 * Docker's extractor does it: a folder the archive names replaces it; one it only implies (a
 * parent of its entries) is followed when it is a symbolic link to a folder, as MkdirAll follows
 * it (so `lib/x` lands in `usr/lib/` of a merged-/usr image). The link is resolved inside the
 * image; Docker's resolves absolute links inside the ADD destination, which is the same for `/`.
 */
async function archiveDirTarget(node: SelectedNode, target: string, w: DiffWriter, namedDirs: ReadonlySet<string>, meta: EntryMeta): Promise<string> {
  const cur = await w.at(target);
  if (!cur || cur.type === 'dir') return target;
  if (namedDirs.has(node.sub)) {
    await w.replaceWithDir(target, meta);
    return target;
  }
  if (cur.type !== 'symlink') return target; // ensureDir says what is in the way
  const resolved = await w.mergedView().locate(target, true);
  if (resolved.entry?.type !== 'dir') throw new KilnError(`cannot extract into ${target}: a symbolic link to ${resolved.path}, which is not a directory`);
  return resolved.path;
}

/** Copies one selected node (and what is below it) to canonical path `target` in the stage. */
async function copyTreeNode(node: SelectedNode, target: string, w: DiffWriter, opts: CopyOptions, links: Map<string, string>): Promise<void> {
  opts.signal.throwIfAborted();
  // Most calls below are synchronous; let timers (progress, Ctrl-C) run now and then.
  if (++copiedSinceYield >= 256) {
    copiedSinceYield = 0;
    await turn();
  }
  const e = node.entry;
  const meta = metaOf(node, opts);
  if (e.type === 'dir') {
    const at = opts.namedDirs && node.sub !== '' ? await archiveDirTarget(node, target, w, opts.namedDirs, meta) : target;
    // An existing directory keeps its own metadata (but for an archive's, see namedDirs); new
    // ones take the source's, except the destination folder itself, which is made like the
    // parents on the way (BuildKit).
    const made = await w.ensureDir(at, node.sub === '' ? parentMeta(opts) : meta);
    if (made === 'existing' && opts.namedDirs?.has(node.sub)) w.restampDir(at, meta);
    for (const c of node.children) await copyTreeNode(c, joinPath(at, c.name), w, opts, links);
    return;
  }
  // An archive's entry replaces a folder in its way, as Docker's extractor does (a copy never does).
  if (opts.namedDirs && (await w.at(target))?.type === 'dir') await w.removeDir(target);
  switch (e.type) {
    case 'symlink':
      await w.writeSymlink(target, await readlink(e.host), meta);
      return;
    case 'file': {
      if (e.stats.nlink > 1) {
        const key = `${e.stats.dev}:${e.stats.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          await w.writeHardlink(target, first);
          return;
        }
        links.set(key, target);
      }
      if (opts.moveFiles) {
        await w.moveFile(target, e.host, meta, e.stats.size);
        return;
      }
      const digest = w.reuse && opts.digestOf ? (opts.knownDigest?.(e) ?? (await opts.digestOf(e))) : undefined;
      if (digest !== undefined && w.lendSync(target, e.host, meta, digest)) return;
      await w.writeFileFrom(target, e.host, meta, e.stats.size, digest);
      return;
    }
    default: {
      const kind = e.stats.mode & 0o170000;
      if (kind === 0o140000) return; // sockets do not survive a copy (nor a tar)
      await w.writeSpecial(target, e.stats.mode, e.stats.rdev, meta);
    }
  }
}

