// The deterministic layer tar: one snapshot folder (overlay format) in, an OCI layer tar out.
// Same folder contents give the same bytes on any machine: entries sorted by byte order within
// each directory (parents before children), numeric owners and no user/group names, mtimes in
// whole seconds clamped to SOURCE_DATE_EPOCH when given, no atime/ctime, PAX records only when
// ustar cannot say it. Overlay whiteouts (char device 0/0) become `.wh.<name>`; an opaque
// directory (trusted.overlay.opaque=y) gets a `.wh..wh..opq` entry; overlay's own xattrs never
// leave the snapshot.

import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { Readable } from 'node:stream';
import { devMajor, devMinor, getXattr, listXattrs, type HostPath } from '../syscalls.js';
import { encodePax, XATTR_PREFIX } from './pax.js';
import { BLOCK, END_OF_ARCHIVE, headerBlocks, padding, paxHeaderBlocks, type TarHeader } from './header.js';
import { turn } from '../event-loop.js';
import { readFullAt } from '../fs.js';
import { isOpaqueDir, isWhiteout, OPAQUE_MARKER, WHITEOUT_PREFIX } from '../overlay-format.js';

/**
 * The writer's format: bump when the same folder would give different bytes, so no layer takes
 * entries from a tar an older writer made (image/previous-layer.ts). 2: modes of 0 stay 0,
 * owner ids from 262144 to 2097151 get PAX records (they were written as 262143), and mtimes
 * after January 2038 and device numbers above 262143 are whole.
 */
export const LAYER_TAR_FORMAT = 2;

/** Where one entry sits in a tar: its header (and any PAX record before it) through its padding. */
export interface TarSlot {
  offset: number;
  length: number;
}

/** A tar this writer made before of an earlier state of the same folder (image/previous-layer.ts). */
export interface PreviousEntries {
  /** The slot of regular file `name` there, when the file is exactly as it was then. */
  slot(name: string): TarSlot | undefined;
  /** Bytes of that tar (fewer only past its end). */
  read(offset: number, length: number): Buffer;
}

export interface LayerTarOptions {
  /** Seconds; mtimes later than this are written as this. */
  sourceDateEpoch?: number;
  /**
   * Unchanged files' entries are copied from this tar when they are the first name of their
   * inode, instead of reading the files.
   */
  previous?: PreviousEntries;
  /**
   * Leave out the tar's head that is byte for byte `previous`'s: the stream starts at `shared()`.
   * Unchanged files there are not even opened.
   */
  omitShared?: boolean;
}

export interface LayerTarStats {
  /** Number of entries written (0 means an empty layer). */
  entries: number;
}

/** Attributes that describe the host rather than the file, or are overlayfs' bookkeeping. */
function xattrKept(name: string): boolean {
  return !name.startsWith('trusted.overlay.') && name !== 'security.selinux';
}

interface Child {
  /** Name as it appears in the tar (a whiteout's `.wh.` form); Latin-1, one char a byte, when raw. */
  tarName: string;
  path: HostPath;
  st: Stats;
  /** The name, or its folder's, is not UTF-8: its tar name and path are bytes (see `latin1`). */
  raw: boolean;
}

/**
 * Names that are not UTF-8 travel as Latin-1 strings, one char per byte, which give the bytes back
 * exactly; the tar carries them in PAX records as those bytes, as Go's archive/tar (BuildKit) does.
 */
function latin1(utf8: string): string {
  return Buffer.from(utf8).toString('latin1');
}

const SLASH = Buffer.from('/');

/** Raw bytes stand behind a name or link target written as Latin-1 (see `latin1`). */
interface RawNames {
  path?: boolean;
  link?: boolean;
}

/**
 * The largest owner id tar-stream's header codec writes (six octal digits; ustar has room for
 * seven, but the codec writes 262143 for anything bigger). Bigger ids go in PAX records.
 */
const MAX_USTAR_ID = 0o777777;
/** Bodies below this are read in one call; bigger ones in chunks of this size. */
const CHUNK = 1 << 20;
/** Entries bigger than this are read from their files rather than copied from a previous tar. */
const MAX_SPLICED = CHUNK;

function fitsUstarName(name: string): boolean {
  if (Buffer.byteLength(name) !== name.length) return false; // non-ASCII
  if (name.length <= 100) return true;
  // ustar splits at a slash into a 155-byte prefix and a 100-byte name.
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    if (i <= 155 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) return true;
  }
  return false;
}

function fitsUstarLink(link: string): boolean {
  return Buffer.byteLength(link) === link.length && link.length <= 100;
}

/**
 * Sorts by the names' bytes. JavaScript compares UTF-16 units, which is the same order unless a
 * name has a character from U+D800 on (surrogates sort below U+E000..U+FFFF there), or is raw.
 */
function sortByBytes(children: Child[]): void {
  if (children.every((c) => !c.raw && !/[\uD800-\uFFFF]/.test(c.tarName))) {
    children.sort((a, b) => (a.tarName < b.tarName ? -1 : a.tarName > b.tarName ? 1 : 0));
    return;
  }
  const keys = new Map(children.map((c) => [c, Buffer.from(c.tarName, c.raw ? 'latin1' : 'utf8')]));
  children.sort((a, b) => Buffer.compare(keys.get(a)!, keys.get(b)!));
}

/**
 * Writes `dir` as a layer tar. `stats` resolves once the last entry is written.
 *
 * The bytes are those tar-stream's pack would write for the same headers (its header codec
 * is used, and its defaults applied: see `headerBlocks`), but assembled here into chunks of
 * about a megabyte: a layer of thousands of small files spent most of its time in the pack's
 * per-entry stream machinery.
 */
export function createLayerTar(
  dir: string,
  opts: LayerTarOptions = {},
): { stream: Readable; stats: Promise<LayerTarStats>; shared(): number } {
  let settle!: { resolve: (s: LayerTarStats) => void; reject: (e: unknown) => void };
  const stats = new Promise<LayerTarStats>((resolve, reject) => (settle = { resolve, reject }));
  stats.catch(() => undefined); // the stream carries the error too
  const head: SharedHead = { bytes: undefined };
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      const out = new ChunkBuilder();
      const entries = yield* writeAll(out, dir, opts, head);
      out.add(END_OF_ARCHIVE);
      yield out.take();
      settle.resolve({ entries });
    } catch (err) {
      settle.reject(err);
      throw err;
    }
  }
  const stream = Readable.from(chunks(), { objectMode: false });
  const shared = (): number => {
    if (head.bytes === undefined) throw new Error('the shared head of a layer tar is known once its first chunk is out');
    return head.bytes;
  };
  return { stream, stats, shared };
}

/** How many leading bytes of the tar were left out as `previous`'s; set before the first chunk. */
interface SharedHead {
  bytes: number | undefined;
}

/** Collects small buffers and hands them on in chunks. */
class ChunkBuilder {
  private parts: Buffer[] = [];
  private bytes = 0;

  add(b: Buffer): void {
    this.parts.push(b);
    this.bytes += b.length;
  }

  /** Enough is collected to hand on a chunk. */
  get full(): boolean {
    return this.bytes >= CHUNK;
  }

  /** What is collected, as one buffer (empty when nothing is). */
  take(): Buffer {
    const chunk = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    return chunk;
  }
}

async function* writeAll(out: ChunkBuilder, root: string, opts: LayerTarOptions, head: SharedHead): AsyncGenerator<Buffer, number> {
  const hardlinks = new Map<string, { name: string; raw: boolean }>();
  let entries = 0;
  let sinceBreak = 0;
  const previous = opts.previous;
  // While sharing, every entry so far is `previous`'s at the same offset, and `out` stays empty.
  let sharing = previous !== undefined && opts.omitShared === true;
  let offset = 0;
  if (!sharing) head.bytes = 0;
  const stopSharing = (): void => {
    sharing = false;
    head.bytes = offset;
  };
  /** The entry just put in `out` is left out if `previous` has the same bytes here. */
  const settleShared = (): void => {
    const bytes = out.take();
    if (bytes.equals(previous!.read(offset, bytes.length))) {
      offset += bytes.length;
      return;
    }
    stopSharing();
    out.add(bytes);
  };

  const mtimeOf = (st: Stats): Date => {
    let secs = Math.floor(st.mtimeMs / 1000);
    if (opts.sourceDateEpoch !== undefined && secs > opts.sourceDateEpoch) secs = opts.sourceDateEpoch;
    if (secs < 0) secs = 0;
    return new Date(secs * 1000);
  };

  /**
   * Whether `name` is the first of its inode's names in this walk (and so not a hard link
   * entry); remembers it. A file with one link always is.
   */
  const firstName = (st: Stats, name: string, raw = false): boolean => {
    if (st.nlink <= 1) return true;
    const key = `${st.dev}:${st.ino}`;
    if (hardlinks.has(key)) return false;
    hardlinks.set(key, { name, raw });
    return true;
  };

  /** Header (and any PAX record) of one entry; the caller adds the body. */
  const put = (header: TarHeader, pax: Array<[string, Buffer | string]>, raw: RawNames = {}): void => {
    const name = header.name;
    const needPath = raw.path === true || !fitsUstarName(name);
    const needLink = header.linkname !== undefined && (raw.link === true || !fitsUstarLink(header.linkname));
    const big = header.uid > MAX_USTAR_ID || header.gid > MAX_USTAR_ID;
    const records: Array<[string, Buffer | string]> = [];
    if (needPath) records.push(['path', raw.path ? Buffer.from(name, 'latin1') : name]);
    if (needLink) records.push(['linkpath', raw.link ? Buffer.from(header.linkname!, 'latin1') : header.linkname!]);
    if (big) {
      records.push(['gid', String(header.gid)]);
      records.push(['uid', String(header.uid)]);
    }
    records.push(...pax);
    if (records.length > 0) {
      out.add(paxHeaderBlocks(encodePax(records), header.mtime));
      // The real values are in the PAX record; ustar gets a stand-in that fits.
      if (needPath) header.name = asciiTail(name, 100);
      if (needLink) header.linkname = asciiTail(header.linkname!, 100);
      if (big) {
        header.uid = Math.min(header.uid, MAX_USTAR_ID);
        header.gid = Math.min(header.gid, MAX_USTAR_ID);
      }
    }
    for (const b of headerBlocks(header)) out.add(b);
    entries++;
    if (sharing) settleShared(); // only headers come here while sharing: a file stops it first
  };

  const xattrRecords = (path: HostPath): Array<[string, Buffer]> => {
    const names = listXattrs(path);
    if (names.length === 0) return [];
    const out: Array<[string, Buffer]> = [];
    for (const n of names.filter(xattrKept).sort()) {
      const v = getXattr(path, n);
      if (v !== undefined) out.push([XATTR_PREFIX + n, v]);
    }
    return out;
  };

  // Bodies are read synchronously at their known size. A small one in one read (the extra
  // byte would show a file that grew), without a generator per file.
  const smallBody = (path: HostPath, size: number): void => {
    const fd = openSync(path, 'r');
    try {
      const buf = Buffer.allocUnsafe(size + 1);
      const n = readFullAt(fd, buf, 0);
      if (n > size) throw new Error(`${path} grew while it was being archived`);
      if (n < size) throw new Error(`${path} shrank while it was being archived`);
      out.add(buf.subarray(0, size));
    } finally {
      closeSync(fd);
    }
    const pad = padding(size);
    if (pad) out.add(pad);
  };

  // A big one in chunks, handed on as they come.
  async function* bigBody(path: HostPath, size: number): AsyncGenerator<Buffer> {
    const fd = openSync(path, 'r');
    try {
      for (let done = 0; done < size; ) {
        const want = Math.min(CHUNK, size - done);
        const buf = Buffer.allocUnsafe(want);
        const n = readFullAt(fd, buf, done);
        if (n < want) throw new Error(`${path} shrank while it was being archived`);
        done += n;
        out.add(buf);
        if (out.full) yield out.take();
      }
      if (readSync(fd, Buffer.alloc(1), 0, 1, size) > 0) throw new Error(`${path} grew while it was being archived`);
    } finally {
      closeSync(fd);
    }
    const pad = padding(size);
    if (pad) out.add(pad);
  }

  /**
   * The entries of folder `abs`. Synchronous: for a layer of many small files, the thread pool's
   * round trips cost more than the calls themselves.
   */
  const childrenOf = (abs: HostPath): Child[] => {
    const children: Child[] = [];
    const add = (diskName: string, path: HostPath, raw: boolean): void => {
      const st = lstatSync(path);
      if (st.isSocket()) return; // tar cannot carry a socket
      children.push({ tarName: isWhiteout(st) ? WHITEOUT_PREFIX + diskName : diskName, path, st, raw });
    };
    const names = typeof abs === 'string' ? readdirSync(abs) : [];
    // U+FFFD stands in for bytes that are not UTF-8: then the names are read again, as bytes.
    if (typeof abs === 'string' && !names.some((n) => n.includes('\uFFFD'))) {
      for (const n of names) add(n, `${abs}/${n}`, false);
      return children;
    }
    const absBytes = typeof abs === 'string' ? Buffer.from(abs) : abs;
    for (const b of readdirSync(abs, { encoding: 'buffer' })) {
      const text = b.toString();
      if (typeof abs === 'string' && Buffer.from(text).equals(b)) add(text, `${abs}/${text}`, false);
      else add(b.toString('latin1'), Buffer.concat([absBytes, SLASH, b]), true);
    }
    return children;
  };

  /** A link's target, as Latin-1 when it is not UTF-8 (see `latin1`). */
  const linkTarget = (path: HostPath): { target: string; raw: boolean } => {
    const target = readlinkSync(path);
    if (!target.includes('\uFFFD')) return { target, raw: false };
    const bytes = readlinkSync(path, { encoding: 'buffer' });
    return Buffer.from(target).equals(bytes) ? { target, raw: false } : { target: bytes.toString('latin1'), raw: true };
  };

  /** Writes the entries below folder `abs`, whose tar name is `rel` (Latin-1 when `rawRel`). */
  async function* walk(abs: HostPath, rel: string, rawRel: boolean): AsyncGenerator<Buffer> {
    const children = childrenOf(abs);
    sortByBytes(children);
    for (const ch of children) {
      if (out.full) yield out.take();
      // Let other work of the process (a step starting, progress) in now and then: a layer
      // can be made while later steps run.
      if (++sinceBreak >= 128) {
        sinceBreak = 0;
        await turn();
      }
      const path = ch.path;
      const raw = ch.raw;
      const parent = raw && !rawRel ? latin1(rel) : rel;
      const name = rel === '' ? ch.tarName : `${parent}/${ch.tarName}`;
      const rawName: RawNames = { path: raw };
      const st = ch.st;
      // A previous tar's entries are found by UTF-8 names: a raw one is written afresh.
      if (previous && st.isFile() && raw && sharing) stopSharing();
      if (previous && st.isFile() && !raw) {
        const slot = previous.slot(name);
        const fits = slot !== undefined && slot.length >= BLOCK + st.size;
        if (sharing && fits && slot.offset === offset && firstName(st, name)) {
          offset += slot.length;
          entries++;
          continue;
        }
        if (sharing) stopSharing();
        if (fits && slot.length <= MAX_SPLICED) {
          const bytes = previous.read(slot.offset, slot.length);
          if (bytes.length === slot.length && firstName(st, name)) {
            out.add(bytes);
            entries++;
            continue;
          }
        }
      }
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: mtimeOf(st) };
      if (isWhiteout(st)) {
        put({ name, type: 'file', size: 0, mode: 0, uid: 0, gid: 0, mtime: mtimeOf(st) }, [], rawName);
        continue;
      }
      if (st.isDirectory()) {
        put({ ...base, name: name + '/', type: 'directory', size: 0 }, xattrRecords(path), rawName);
        if (isOpaqueDir(path)) {
          put({ name: `${name}/${OPAQUE_MARKER}`, type: 'file', size: 0, mode: 0, uid: 0, gid: 0, mtime: mtimeOf(st) }, [], rawName);
        }
        yield* walk(path, name, raw);
        continue;
      }
      if (!firstName(st, name, raw)) {
        const first = hardlinks.get(`${st.dev}:${st.ino}`)!;
        put({ ...base, name, type: 'link', size: 0, linkname: first.name }, [], { path: raw, link: first.raw });
        continue;
      }
      if (st.isSymbolicLink()) {
        const link = linkTarget(path);
        put({ ...base, name, type: 'symlink', size: 0, linkname: link.target }, xattrRecords(path), { path: raw, link: link.raw });
      } else if (st.isFile()) {
        put({ ...base, name, type: 'file', size: st.size }, xattrRecords(path), rawName);
        if (st.size >= CHUNK) yield* bigBody(path, st.size);
        else if (st.size > 0) smallBody(path, st.size);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        put(
          { ...base, name, type: st.isCharacterDevice() ? 'character-device' : 'block-device', size: 0, devmajor: devMajor(st.rdev), devminor: devMinor(st.rdev) },
          xattrRecords(path),
          rawName,
        );
      } else if (st.isFIFO()) {
        put({ ...base, name, type: 'fifo', size: 0 }, xattrRecords(path), rawName);
      }
    }
  }

  yield* walk(root, '', false);
  if (sharing) stopSharing();
  return entries;
}


function asciiTail(s: string, max: number): string {
  const ascii = s.replace(/[^\x20-\x7e]/g, '_');
  return ascii.length <= max ? ascii : ascii.slice(ascii.length - max);
}

