// Writes a file op's result as an overlay diff: only the new entries, plus the directories on
// the way to them copied up from the lower layers with their metadata (as overlayfs would).
// Everything is written below the staging folder with no-follow calls, so no symlink in the
// source or destination can make a write land outside it. Metadata calls are synchronous: a
// thread-pool round trip per call would dominate a COPY of many small files.

import { copyFile, writeFile, constants } from 'node:fs/promises';
import { CopyBatch } from './copy-batch.js';
import {
  chmodSync, copyFileSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, renameSync, rmSync, symlinkSync, utimesSync, type Stats,
} from 'node:fs';
import { entryType, RootfsView, type EntryType, type ViewStat } from '../../store/rootfs-view.js';
import { isWhiteout, OVERLAY_OPAQUE_XATTR } from '../../util/overlay-format.js';
import { KilnError } from '../../util/errors.js';
import { getXattr, listXattrs, makeWhiteout, mknod, setXattr } from '../../util/syscalls.js';
import type { Digest } from '../../graph/ops.js';
import type { CopyReuse } from './reuse.js';

export interface EntryMeta {
  uid: number;
  gid: number;
  /** Permission bits (12: with setuid/setgid/sticky). */
  mode: number;
}

export interface Present {
  type: EntryType;
  inStage: boolean;
  stats: ViewStat;
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export class DiffWriter {
  /** Directory mtimes to set last (adding entries changes a directory's mtime). */
  private readonly dirTimes = new Map<string, number>();
  /** Canonical paths of directories made here that no lower layer has. */
  private readonly createdDirs = new Set<string>();
  /** Canonical paths of everything but directories written here. */
  private readonly written = new Set<string>();
  /** Directories an archive's non-directory entry took the place of (removeDir). */
  private readonly removedDirs = new Set<string>();
  private wrote = false;

  /**
   * @param lowerLayers host folders of the destination's layers, bottom to top
   * @param mtime seconds every new entry gets (SOURCE_DATE_EPOCH or 0)
   * @param nameLayers where --chown names are looked up (the real destination image, even
   *   for --link, whose diff is made against nothing)
   */
  constructor(
    readonly stage: string,
    readonly lowerLayers: readonly string[],
    readonly mtime: number,
    nameLayers: readonly string[] = lowerLayers,
  ) {
    this.lower = new RootfsView(lowerLayers);
    this.names = nameLayers === lowerLayers ? this.lower : new RootfsView(nameLayers);
  }

  readonly lower: RootfsView;
  /** Files of the previous snapshot of this COPY that may be linked instead of copied (see reuse.ts). */
  reuse: CopyReuse | undefined;
  /** Plain files copied off the event loop, in batches (see copy-batch.ts); made on first use. */
  private batch: CopyBatch | null | undefined;
  /** The destination image, for /etc/passwd and /etc/group. */
  readonly names: RootfsView;

  host(p: string): string {
    // `p` is canonical (absolute, no `.`, `..` or double slashes): no need for join's normalising.
    return p === '/' ? this.stage : this.stage + p;
  }

  /** A fresh view of lower layers + what is staged so far, to resolve destinations through symlinks. */
  mergedView(): RootfsView {
    return new RootfsView([...this.lowerLayers, this.stage]);
  }

  get changed(): boolean {
    return this.wrote;
  }

  /** What the merged filesystem holds at canonical path `p` (no symlink followed). */
  async at(p: string): Promise<Present | undefined> {
    if (this.batch?.has(this.host(p))) await this.settle();
    // Below a directory this diff made, only what it wrote there exists.
    if (this.createdDirs.has(parentOf(p)) && !this.createdDirs.has(p) && !this.written.has(p)) return undefined;
    let st: Stats | undefined;
    try {
      st = lstatSync(this.host(p), { throwIfNoEntry: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
    }
    if (st) return isWhiteout(st) ? undefined : { type: entryType(st.mode), inStage: true, stats: st };
    // Below a directory this diff made, the lower layers hold nothing.
    if (this.createdDirs.has(parentOf(p))) return undefined;
    const e = await this.lower.lstat(p);
    return e && { type: e.type, inStage: false, stats: e.stats };
  }

  /**
   * Makes every directory above `p` exist in the stage: copied up from the lower layers when
   * they exist there, else created with `create`.
   */
  async ensureParents(p: string, create: EntryMeta): Promise<void> {
    const parent = parentOf(p);
    if (parent === '/' || p === '/') return;
    await this.ensureDir(parent, create);
  }

  /**
   * A directory at `p`: kept (copied up, metadata and all) when one exists, else made with
   * `create`. Anything else in the way is an error, as in BuildKit (a copy never replaces a
   * file or a symlink by a directory, nor a directory by a file).
   */
  async ensureDir(p: string, create: EntryMeta): Promise<'existing' | 'created'> {
    if (p === '/') return 'existing';
    const cur = await this.at(p);
    if (cur?.type === 'dir' && cur.inStage) return 'existing';
    await this.ensureParents(p, create);
    const h = this.host(p);
    if (cur?.type === 'dir') {
      mkdirSync(h);
      this.applyMeta(h, 'dir', { uid: cur.stats.uid, gid: cur.stats.gid, mode: cur.stats.mode & 0o7777 });
      this.dirTimes.set(h, cur.stats.mtimeMs / 1000);
      this.wrote = true;
      return 'existing';
    }
    if (cur) throw new KilnError(`cannot copy to non-directory: ${p} is a ${cur.type === 'other' ? 'special file' : cur.type}`);
    mkdirSync(h);
    this.applyMeta(h, 'dir', create);
    this.dirTimes.set(h, this.mtime);
    this.createdDirs.add(p);
    this.wrote = true;
    return 'created';
  }

  /**
   * Gives the directory at `p`, already in the stage (ensureDir), the owner and mode of `meta`
   * and the time of a new entry: it is written by this op now, not kept.
   */
  restampDir(p: string, meta: EntryMeta): void {
    const h = this.host(p);
    this.applyMeta(h, 'dir', meta);
    this.dirTimes.set(h, this.mtime);
    this.wrote = true;
  }

  /**
   * A new directory at `p` in place of the non-directory there (its parents are in the stage):
   * an archive's folder replaces what is in its way, as Docker's extractor does.
   */
  async replaceWithDir(p: string, meta: EntryMeta): Promise<void> {
    await this.dropFromStage(p);
    mkdirSync(this.host(p));
    this.restampDir(p, meta);
    // Nothing of the lower layers is below it: they hold a non-directory here.
    this.createdDirs.add(p);
  }

  /**
   * Takes the directory at `p` away, for an archive's non-directory entry of that name (Docker's
   * extractor replaces it). What this op put below it goes; a lower layer's directory is hidden
   * by the entry written next, as overlayfs hides a lower directory under an upper file.
   */
  async removeDir(p: string): Promise<void> {
    await this.dropFromStage(p);
    this.removedDirs.add(p);
    this.wrote = true;
  }

  /**
   * Deletes `p` from the image, for an archive's whiteout entry: what this op wrote there goes,
   * and a whiteout hides what the lower layers hold (as the `.wh.` file Docker's extractor
   * leaves in the layer does for every reader of the image).
   */
  async whiteout(p: string): Promise<void> {
    const cur = await this.at(p);
    if (!cur) return;
    if (cur.inStage) await this.dropFromStage(p);
    const lower = this.createdDirs.has(parentOf(p)) ? undefined : await this.lower.lstat(p);
    if (lower) {
      await this.ensureParents(p, { uid: 0, gid: 0, mode: 0o755 });
      makeWhiteout(this.host(p));
      this.written.add(p);
    }
    this.wrote = true;
  }

  /**
   * Hides what the lower layers hold below the directory `p` (an archive's opaque marker);
   * what this op writes there stays, as the same layer's entries do below Docker's marker.
   */
  async makeOpaque(p: string): Promise<void> {
    const cur = await this.at(p);
    if (cur?.type !== 'dir' || this.createdDirs.has(p)) return;
    await this.ensureDir(p, { uid: 0, gid: 0, mode: 0o755 });
    setXattr(this.host(p), OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
    this.createdDirs.add(p);
    this.wrote = true;
  }

  /** Forgets `p` and everything below it that this op wrote, and removes it from the stage. */
  private async dropFromStage(p: string): Promise<void> {
    await this.settle();
    const h = this.host(p);
    rmSync(h, { recursive: true, force: true });
    const below = (q: string) => q === p || q.startsWith(p === '/' ? '/' : `${p}/`);
    for (const q of [...this.createdDirs]) if (below(q)) this.createdDirs.delete(q);
    for (const q of [...this.written]) if (below(q)) this.written.delete(q);
    for (const q of [...this.dirTimes.keys()]) if (q === h || q.startsWith(`${h}/`)) this.dirTimes.delete(q);
    this.reuse?.forgetUnder(p);
  }

  /** Clears the place for a non-directory at `p` (its parents must exist in the stage). */
  private async clearFor(p: string, what: string): Promise<string> {
    const cur = await this.at(p);
    const h = this.host(p);
    // Only an archive's entries replace a directory, after removeDir; from the lower layers it may
    // still show here: the entry written now hides it.
    if (cur?.type === 'dir' && (cur.inStage || !this.removedDirs.has(p))) throw new KilnError(`cannot replace directory ${p} with a ${what}`);
    if (cur?.inStage) {
      rmSync(h, { force: true });
      this.reuse?.forget(p);
    }
    this.written.add(p);
    this.dirTimes.delete(h);
    this.wrote = true;
    return h;
  }

  /**
   * A copy of `sourceHost` at `p`. With `digest` (the source's content digest), the previous
   * snapshot's identical file is linked when there is one, and the new file is recorded as
   * lendable to the next snapshot.
   */
  async writeFileFrom(p: string, sourceHost: string, meta: EntryMeta, size = Infinity, digest?: Digest): Promise<void> {
    const h = await this.clearFor(p, 'file');
    const xattrs = xattrNames(sourceHost);
    const lendable = digest !== undefined && this.reuse !== undefined && xattrs.length === 0;
    if (lendable && this.linkEarlier(p, h, meta, digest)) return;
    if (xattrs.length === 0) {
      this.batch ??= CopyBatch.open(this.mtime) ?? null;
      if (this.batch) {
        this.batch.add(sourceHost, h, size, meta);
        if (lendable) this.reuse!.record(p, digest, meta);
        return;
      }
    }
    // Small files are copied inline; big ones off the event loop.
    if (size < 1 << 20) copyFileSync(sourceHost, h);
    else await copyFile(sourceHost, h, constants.COPYFILE_FICLONE);
    this.applyMeta(h, 'file', meta);
    copyXattrs(sourceHost, h, xattrs);
    if (lendable) this.reuse!.record(p, digest, meta);
  }

  /**
   * `sourceHost`, a file of kiln's own scratch folder (an extracted archive's), moved to `p`:
   * a rename is a fraction of a copy, and leaves less to delete. A file with xattrs is copied
   * (the chown that follows would drop a file capability); so is one on another file system.
   */
  async moveFile(p: string, sourceHost: string, meta: EntryMeta, size: number): Promise<void> {
    if (xattrNames(sourceHost).length > 0) return this.writeFileFrom(p, sourceHost, meta, size);
    const h = await this.clearFor(p, 'file');
    try {
      renameSync(sourceHost, h);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      return this.writeFileFrom(p, sourceHost, meta, size);
    }
    this.applyMeta(h, 'file', meta);
  }

  /**
   * writeFileFrom's link from the previous snapshot, without waiting for anything: true when
   * done (`p` new below a directory this diff made, the previous snapshot's file identical);
   * false leaves `p` to writeFileFrom.
   */
  lendSync(p: string, sourceHost: string, meta: EntryMeta, digest: Digest): boolean {
    if (!this.reuse || !this.createdDirs.has(parentOf(p)) || this.createdDirs.has(p) || this.written.has(p)) return false;
    if (xattrNames(sourceHost).length > 0 || !this.linkEarlier(p, this.host(p), meta, digest)) return false;
    this.written.add(p);
    this.wrote = true;
    return true;
  }

  /** Links the previous snapshot's identical file at `h` (host path of `p`), when it has one. */
  private linkEarlier(p: string, h: string, meta: EntryMeta, digest: Digest): boolean {
    const earlier = this.reuse?.candidate(p, digest, meta);
    if (earlier === undefined || !tryLink(earlier, h)) return false;
    this.reuse!.record(p, digest, meta);
    this.reuse!.linked++;
    return true;
  }

  async writeFileData(p: string, data: string | Uint8Array, meta: EntryMeta): Promise<void> {
    const h = await this.clearFor(p, 'file');
    await writeFile(h, data);
    this.applyMeta(h, 'file', meta);
  }

  async writeSymlink(p: string, target: string, meta: EntryMeta): Promise<void> {
    const h = await this.clearFor(p, 'symlink');
    symlinkSync(target, h);
    lchownSync(h, meta.uid, meta.gid);
    lutimesSync(h, this.mtime, this.mtime);
  }

  async writeSpecial(p: string, fullMode: number, rdev: number, meta: EntryMeta): Promise<void> {
    const h = await this.clearFor(p, 'special file');
    const major = Number((BigInt(rdev) >> 8n) & 0xfffn);
    const minor = Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
    mknod(h, (fullMode & 0o170000) | (meta.mode & 0o777), major, minor);
    this.applyMeta(h, 'other', meta);
  }

  /** A hard link to an entry already written in this stage. */
  async writeHardlink(p: string, existing: string): Promise<void> {
    const h = await this.clearFor(p, 'file');
    if (this.batch?.has(this.host(existing))) await this.settle();
    linkSync(this.host(existing), h);
  }

  private applyMeta(h: string, type: EntryType, meta: EntryMeta): void {
    // chown clears setuid/setgid, so the mode goes on after the owner.
    lchownSync(h, meta.uid, meta.gid);
    chmodSync(h, meta.mode & 0o7777);
    if (type !== 'dir') utimesSync(h, this.mtime, this.mtime);
  }

  /** Every file written so far is in place (batched copies included). */
  async settle(): Promise<void> {
    await this.batch?.settle();
  }

  /** Waits for copies under way before the stage is thrown away. */
  async abandon(): Promise<void> {
    await this.batch?.abandon();
  }

  /** Sets directory times, deepest first, once nothing more will be added to them. */
  async finish(): Promise<void> {
    await this.settle();
    const dirs = [...this.dirTimes.entries()].sort((a, b) => b[0].length - a[0].length);
    for (const [h, t] of dirs) utimesSync(h, t, t);
    this.dirTimes.clear();
  }
}

/** The extended attributes a copy carries over (overlayfs' own never). */
function xattrNames(from: string): string[] {
  try {
    return listXattrs(from).filter((n) => !n.startsWith('trusted.overlay.'));
  } catch {
    return [];
  }
}

function copyXattrs(from: string, to: string, names: string[] = xattrNames(from)): void {
  for (const n of names) {
    const v = getXattr(from, n);
    if (v === undefined) continue;
    try {
      setXattr(to, n, v);
    } catch {
      // The staging filesystem may refuse some namespaces; the content is what matters.
    }
  }
}

/** A hard link, or false when the filesystem will not make one (another device, too many links). */
function tryLink(existing: string, at: string): boolean {
  try {
    linkSync(existing, at);
    return true;
  } catch {
    return false;
  }
}
