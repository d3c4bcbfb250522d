// A read-only view of a root filesystem made of stacked snapshot folders (overlay format),
// without mounting anything. Paths are always resolved INSIDE the root: an absolute symlink
// target or a `..` climbs no higher than `/`, so a link `/app -> /etc` means the image's /etc,
// never the host's. Used for COPY sources and destinations, /etc/passwd lookups and exports.

import { readFile, readlink } from 'node:fs/promises';
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join, normalize } from 'node:path';
import { isOpaqueDir, isWhiteout } from '../util/overlay-format.js';
import { KilnError } from '../util/errors.js';
import type { Store } from './store.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/** The subset of fs.Stats a view entry carries (the root of an empty stack has no real Stats). */
export interface ViewStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  nlink: number;
  rdev: number;
}

export interface ViewEntry {
  /** Canonical absolute path inside the root (no symlinks, no `.`/`..`); `/` for the root. */
  path: string;
  type: EntryType;
  /** Metadata of the topmost copy. */
  stats: ViewStat;
  /** Host path of the topmost copy (empty for the root of an empty stack). */
  host: string;
  /** For directories: host paths of every layer's copy merged into it, top first. */
  dirs: string[];
}

const MAX_SYMLINK_HOPS = 40;
const NO_DIRS: string[] = [];
const S_IFMT = 0o170000;

export function entryType(mode: number): EntryType {
  switch (mode & S_IFMT) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    default:
      return 'other';
  }
}

function plainName(name: string): boolean {
  return name !== '.' && name !== '..' && name !== '' && !name.includes('/');
}

/** `path.normalize` without a trailing slash (except for `/` itself). */
function normalizeDir(p: string): string {
  const n = normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** `a/./b/../c` -> ['a', 'c'] lexically is NOT what we want: `..` must be resolved after symlinks. */
function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

export interface Located {
  /** Canonical path: symlinks in the existing part resolved, the missing tail appended. */
  path: string;
  entry: ViewEntry | undefined;
}

/** An entry of a walk made outside the view: its path below the walked folder and metadata. */
export interface WalkedEntry {
  rel: string;
  stats: ViewStat;
}

export class RootfsView {
  /** Snapshots never change, so lookups are memoized for the view's lifetime. */
  private readonly cache = new Map<string, ViewEntry | null>();
  /** Folders whose entries a prefill listed, in readdir's order. */
  private readonly listings = new Map<string, ViewEntry[]>();
  private rootEntry: ViewEntry | undefined;

  /** `layers`: host folders bottom (base) to top. */
  constructor(readonly layers: readonly string[]) {}

  static forSnapshots(store: Store, ids: readonly string[]): RootfsView {
    return new RootfsView(ids.map((id) => store.snapshotFs(id)));
  }

  /** Forget memoized lookups (for a view whose top layer is being written). */
  invalidate(): void {
    this.cache.clear();
    this.listings.clear();
    this.rootEntry = undefined;
  }

  /**
   * Takes the metadata of a walk of `match` (its own record first, then everything below it in
   * pre-order, kiln-treestat's) as this view's answers below it, instead of an lstat per entry.
   * Only for a one-folder view (a build context). `skipped`: paths below the match the walk
   * did not look at; their folders' listings are then read from the disk as usual.
   */
  prefill(match: ViewEntry, walked: WalkedEntry[], skipped: string[]): void {
    if (this.layers.length !== 1 || match.dirs.length > 1 || walked[0]?.rel !== '') return;
    // A name that is not UTF-8 is for readdirSync to refuse, with its message.
    if (walked.some((w) => w.rel.includes('\uFFFD'))) return;
    const unlisted = new Set(skipped.map((p) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '')));
    const lists = new Map<string, { entries: ViewEntry[]; names: string[]; sort: boolean }>();
    if (match.type === 'dir' && !unlisted.has('')) lists.set('', { entries: [], names: [], sort: false });
    for (let i = 1; i < walked.length; i++) {
      const { rel, stats } = walked[i]!;
      const slash = rel.lastIndexOf('/');
      const parent = slash < 0 ? '' : rel.slice(0, slash);
      const name = rel.slice(slash + 1);
      const path = childPath(match.path, rel);
      const type = entryType(stats.mode);
      let entry = this.cache.get(path);
      if (entry === undefined) {
        const host = `${match.host}/${rel}`;
        entry = isWhiteout(stats) ? null : { path, type, stats, host, dirs: type === 'dir' ? [host] : NO_DIRS };
        this.cache.set(path, entry);
      }
      if (type === 'dir' && entry && !unlisted.has(rel)) lists.set(rel, { entries: [], names: [], sort: false });
      const list = lists.get(parent);
      if (list && entry) {
        list.entries.push(entry);
        list.names.push(name);
        // The walk sorts names bytewise, readdirSync by UTF-16 units: the same for ASCII.
        if (!list.sort && /[^\x00-\x7f]/.test(name)) list.sort = true;
      }
    }
    for (const [rel, list] of lists) {
      let entries = list.entries;
      if (list.sort) {
        const order = list.names.map((n, i) => [n, i] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        entries = order.map(([, i]) => list.entries[i]!);
      }
      this.listings.set(rel === '' ? match.path : childPath(match.path, rel), entries);
    }
  }

  async root(): Promise<ViewEntry> {
    if (this.rootEntry) return this.rootEntry;
    const dirs: string[] = [];
    let top: Stats | undefined;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const host = this.layers[i]!;
      const st = lstatSync(host, { throwIfNoEntry: false });
      if (!st) continue;
      top ??= st;
      // Normalised once here, so that child paths below are plain concatenations (join's
      // normalising was a noticeable part of walking thousands of files).
      dirs.push(normalizeDir(host));
      // An opaque folder hides the layers below it; the bottom layer has none, so its xattr
      // is not read (a context folder is a one-layer view: no getxattr per folder).
      if (i > 0 && isOpaqueDir(host)) break;
    }
    const stats: ViewStat = top ?? {
      mode: 0o040755, uid: 0, gid: 0, size: 0, mtimeMs: 0, ctimeMs: 0, ino: 0, dev: 0, nlink: 1, rdev: 0,
    };
    this.rootEntry = { path: '/', type: 'dir', stats, host: dirs[0] ?? '', dirs };
    return this.rootEntry;
  }

  /**
   * The entry `name` inside directory `dir`, merged across layers. Metadata calls are
   * synchronous on purpose: a COPY of thousands of small files would otherwise spend most of
   * its time waiting for libuv's thread pool, one round trip per lstat.
   */
  async child(dir: ViewEntry, name: string): Promise<ViewEntry | undefined> {
    return this.childSync(dir, name);
  }

  /** child() without a promise per call (a walk of thousands of files makes much garbage). */
  childSync(dir: ViewEntry, name: string): ViewEntry | undefined {
    const path = childPath(dir.path, name);
    const hit = this.cache.get(path);
    if (hit !== undefined) return hit ?? undefined;
    let topHost: string | undefined;
    let topSt: Stats | undefined;
    // Shared empty list until a folder is found: most entries are files, and a walk keeps them all.
    let dirs = NO_DIRS;
    for (let i = 0; i < dir.dirs.length; i++) {
      // The folder is normalised; a plain name needs no more than a slash.
      const d = dir.dirs[i]!;
      const host = !plainName(name) ? join(d, name) : d.endsWith('/') ? d + name : `${d}/${name}`;
      let st: Stats | undefined;
      try {
        st = lstatSync(host, { throwIfNoEntry: false });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
      }
      if (!st) continue;
      if (isWhiteout(st)) break;
      topHost ??= host;
      topSt ??= st;
      if (!st.isDirectory()) break; // a non-directory hides everything below it
      if (dirs === NO_DIRS) dirs = [host];
      else dirs.push(host);
      if (i < dir.dirs.length - 1 && isOpaqueDir(host)) break;
    }
    const entry: ViewEntry | undefined = topSt && { path, type: entryType(topSt.mode), stats: topSt, host: topHost!, dirs };
    this.cache.set(path, entry ?? null);
    return entry;
  }

  /**
   * Resolves `path` inside the root. Symlinks in every component but the last are followed;
   * the last is followed when `followLast`. Throws when a component is not a directory.
   */
  async locate(path: string, followLast: boolean): Promise<Located> {
    const stack: ViewEntry[] = [await this.root()];
    const queue = components(path);
    let hops = 0;
    while (queue.length > 0) {
      const name = queue.shift()!;
      const cur = stack[stack.length - 1]!;
      if (name === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      if (cur.type !== 'dir') throw new KilnError(`${cur.path} is not a directory (resolving ${path})`);
      const next = await this.child(cur, name);
      if (!next) {
        // Missing: the rest is appended lexically (nothing below can be a symlink).
        const tail = [name, ...queue];
        let p = cur.path;
        for (const c of tail) {
          if (c === '..') p = p === '/' ? '/' : p.slice(0, p.lastIndexOf('/')) || '/';
          else p = childPath(p, c);
        }
        return { path: p, entry: undefined };
      }
      if (next.type === 'symlink' && (queue.length > 0 || followLast)) {
        if (++hops > MAX_SYMLINK_HOPS) throw new KilnError(`too many levels of symbolic links resolving ${path}`);
        const target = await readlink(next.host);
        if (target.startsWith('/')) stack.length = 1;
        queue.unshift(...components(target));
        continue;
      }
      stack.push(next);
    }
    const last = stack[stack.length - 1]!;
    return { path: last.path, entry: last };
  }

  /** The entry at `path` (a final symlink is not followed), or undefined. */
  async lstat(path: string): Promise<ViewEntry | undefined> {
    try {
      return (await this.locate(path, false)).entry;
    } catch (err) {
      if (err instanceof KilnError) return undefined;
      throw err;
    }
  }

  /** The entry at `path`, following a final symlink, or undefined. */
  async stat(path: string): Promise<ViewEntry | undefined> {
    try {
      return (await this.locate(path, true)).entry;
    } catch (err) {
      if (err instanceof KilnError) return undefined;
      throw err;
    }
  }

  /** Entries of a directory, merged across layers, sorted by name. */
  async readdir(dir: ViewEntry): Promise<ViewEntry[]> {
    return this.readdirSync(dir);
  }

  /** readdir() without promises. */
  readdirSync(dir: ViewEntry): ViewEntry[] {
    const listed = this.listings.get(dir.path);
    if (listed) return listed;
    // One folder (a build context, a single layer) needs no merging of names.
    const names = dir.dirs.length === 1 ? readdirSync(dir.dirs[0]!) : [...new Set(dir.dirs.flatMap((d) => readdirSync(d)))];
    for (const n of names) {
      // Node decodes names as UTF-8; a name that is not would be looked up under a mangled
      // name and silently dropped, so say so instead.
      if (n.includes('\uFFFD')) throw new KilnError(`${childPath(dir.path, n)}: file names that are not UTF-8 are not supported`);
    }
    const out: ViewEntry[] = [];
    for (const n of names.sort()) {
      const e = this.childSync(dir, n);
      if (e) out.push(e);
    }
    return out;
  }

  async readFile(path: string): Promise<Buffer> {
    const e = await this.stat(path);
    if (!e || e.type !== 'file') throw new KilnError(`${path}: no such file in the image`);
    return readFile(e.host);
  }

  /** The file's contents, or undefined when it is missing or not a regular file. */
  async readFileIfExists(path: string): Promise<Buffer | undefined> {
    const e = await this.stat(path);
    return e && e.type === 'file' ? readFile(e.host) : undefined;
  }

  async readlink(entry: ViewEntry): Promise<string> {
    return readlink(entry.host);
  }

  /** Pre-order walk below (and including) `start`, siblings sorted, symlinks not followed. */
  async *walk(start: ViewEntry): AsyncGenerator<ViewEntry> {
    yield start;
    if (start.type !== 'dir') return;
    for (const e of await this.readdir(start)) yield* this.walk(e);
  }
}
