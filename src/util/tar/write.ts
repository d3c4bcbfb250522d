// The deterministic layer tar: one snapshot folder (overlay format) in, an OCI layer tar out.
// Same folder contents give the same bytes on any machine: entries sorted by byte order within
// each directory (parents before children), numeric owners and no user/group names, mtimes in
// whole seconds clamped to SOURCE_DATE_EPOCH when given, no atime/ctime, PAX records only when
// ustar cannot say it. Overlay whiteouts (char device 0/0) become `.wh.<name>`; an opaque
// directory (trusted.overlay.opaque=y) gets a `.wh..wh..opq` entry; overlay's own xattrs never
// leave the snapshot.

import { createReadStream, lstatSync, readFileSync, readdirSync, type Stats } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import tar from 'tar-stream';
import { devMajor, devMinor, getXattr, listXattrs } from '../syscalls.js';
import { encodePax, paxHeaderBlocks, XATTR_PREFIX } from './pax.js';

export interface LayerTarOptions {
  /** Seconds; mtimes later than this are written as this. */
  sourceDateEpoch?: number;
}

export interface LayerTarStats {
  /** Number of entries written (0 means an empty layer). */
  entries: number;
}

/** tar-stream's header, widened to the PAX header type kiln writes itself. */
type TarHeader = Omit<Partial<tar.Header>, 'type'> & { name: string; type?: tar.Header['type'] | 'pax-header' };
type Sink = ReturnType<tar.Pack['entry']>;

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

/** Attributes that describe the host rather than the file, or are overlayfs' bookkeeping. */
function xattrKept(name: string): boolean {
  return !name.startsWith('trusted.overlay.') && name !== 'security.selinux';
}

export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

interface Child {
  /** Name as it appears in the tar (a whiteout's `.wh.` form). */
  tarName: string;
  diskName: string;
  st: Stats;
}

const MAX_USTAR_ID = 0o7777777;

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

/** Writes `dir` as a layer tar. `stats` resolves once the last entry is written. */
export function createLayerTar(dir: string, opts: LayerTarOptions = {}): { stream: Readable; stats: Promise<LayerTarStats> } {
  const pack = tar.pack();
  // The error reaches the reader through the returned stream; without this listener a reader
  // that already gave up would turn it into an uncaught exception.
  pack.on('error', () => undefined);
  const stats = writeAll(pack, dir, opts).then(
    (entries) => {
      pack.finalize();
      return { entries };
    },
    (err: unknown) => {
      pack.destroy(err as Error);
      throw err;
    },
  );
  stats.catch(() => undefined); // the stream carries the error too
  const stream = Readable.from(pack as unknown as AsyncIterable<Buffer>, { objectMode: false });
  return { stream, stats };
}

async function writeAll(pack: tar.Pack, root: string, opts: LayerTarOptions): Promise<number> {
  const hardlinks = new Map<string, string>();
  let entries = 0;

  const mtimeOf = (st: Stats): Date => {
    let secs = Math.floor(st.mtimeMs / 1000);
    if (opts.sourceDateEpoch !== undefined && secs > opts.sourceDateEpoch) secs = opts.sourceDateEpoch;
    if (secs < 0) secs = 0;
    return new Date(secs * 1000);
  };

  const put = async (header: TarHeader, pax: Array<[string, Buffer | string]>, file?: string): Promise<void> => {
    const name = header.name;
    const needPath = !fitsUstarName(name);
    const needLink = header.linkname !== undefined && header.linkname !== null && !fitsUstarLink(header.linkname);
    const big = (header.uid ?? 0) > MAX_USTAR_ID || (header.gid ?? 0) > MAX_USTAR_ID;
    const records: Array<[string, Buffer | string]> = [];
    if (needPath) records.push(['path', name]);
    if (needLink) records.push(['linkpath', header.linkname!]);
    if (big) {
      records.push(['gid', String(header.gid)]);
      records.push(['uid', String(header.uid)]);
    }
    records.push(...pax);
    if (records.length > 0) {
      const paxBody = encodePax(records);
      // Between entries tar-stream has nothing in flight, so the blocks can go straight in.
      (pack as unknown as { push(b: Buffer): boolean }).push(paxHeaderBlocks(paxBody, header.mtime ?? new Date(0)));
      // The real values are in the PAX record; ustar gets a stand-in that fits.
      if (needPath) header.name = asciiTail(name, 100);
      if (needLink) header.linkname = asciiTail(header.linkname!, 100);
      if (big) {
        header.uid = Math.min(header.uid ?? 0, MAX_USTAR_ID);
        header.gid = Math.min(header.gid ?? 0, MAX_USTAR_ID);
      }
    }
    await entry(pack, header, undefined, file);
    entries++;
  };

  const xattrRecords = (path: string): Array<[string, Buffer]> => {
    const out: Array<[string, Buffer]> = [];
    for (const n of listXattrs(path).filter(xattrKept).sort()) {
      const v = getXattr(path, n);
      if (v !== undefined) out.push([XATTR_PREFIX + n, v]);
    }
    return out;
  };

  const walk = async (rel: string): Promise<void> => {
    const abs = rel === '' ? root : join(root, rel);
    // Synchronous: for a layer of many small files, the thread pool's round trips cost more
    // than the calls themselves.
    const names = readdirSync(abs);
    const children: Child[] = [];
    for (const diskName of names) {
      const st = lstatSync(join(abs, diskName));
      if (st.isSocket()) continue; // tar cannot carry a socket
      children.push({ diskName, st, tarName: isWhiteout(st) ? WHITEOUT_PREFIX + diskName : diskName });
    }
    children.sort((a, b) => Buffer.compare(Buffer.from(a.tarName), Buffer.from(b.tarName)));
    for (const ch of children) {
      const path = join(abs, ch.diskName);
      const name = rel === '' ? ch.tarName : `${rel}/${ch.tarName}`;
      const st = ch.st;
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: mtimeOf(st) };
      if (isWhiteout(st)) {
        await put({ name, type: 'file', size: 0, mode: 0, uid: 0, gid: 0, mtime: mtimeOf(st) }, []);
        continue;
      }
      if (st.isDirectory()) {
        await put({ ...base, name: name + '/', type: 'directory', size: 0 }, xattrRecords(path));
        const opaque = getXattr(path, OVERLAY_OPAQUE_XATTR);
        if (opaque && opaque.toString() === 'y') {
          await put({ name: `${name}/${OPAQUE_MARKER}`, type: 'file', size: 0, mode: 0, uid: 0, gid: 0, mtime: mtimeOf(st) }, []);
        }
        await walk(rel === '' ? ch.diskName : `${rel}/${ch.diskName}`);
        continue;
      }
      if (st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = hardlinks.get(key);
        if (first !== undefined) {
          await put({ ...base, name, type: 'link', size: 0, linkname: first }, []);
          continue;
        }
        hardlinks.set(key, name);
      }
      if (st.isSymbolicLink()) {
        await put({ ...base, name, type: 'symlink', size: 0, linkname: await readlink(path) }, xattrRecords(path));
      } else if (st.isFile()) {
        await put({ ...base, name, type: 'file', size: st.size }, xattrRecords(path), st.size > 0 ? path : undefined);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        await put(
          { ...base, name, type: st.isCharacterDevice() ? 'character-device' : 'block-device', size: 0, devmajor: devMajor(st.rdev), devminor: devMinor(st.rdev) },
          xattrRecords(path),
        );
      } else if (st.isFIFO()) {
        await put({ ...base, name, type: 'fifo', size: 0 }, xattrRecords(path));
      }
    }
  };

  await walk('');
  return entries;
}

const SMALL_FILE = 1 << 20;

/** Adds one entry (its body streamed from `file` when given) and waits until tar-stream has taken all of it. */
async function entry(pack: tar.Pack, header: TarHeader, body?: Buffer, file?: string): Promise<void> {
  if (file !== undefined && (header.size ?? 0) < SMALL_FILE) {
    // One read instead of a stream: most files of most layers are small.
    const data = readFileSync(file);
    if (data.length > (header.size ?? 0)) throw new Error(`${file} grew while it was being archived`);
    if (data.length < (header.size ?? 0)) throw new Error(`${file} shrank while it was being archived`);
    body = data;
    file = undefined;
  }
  if (file === undefined) {
    await new Promise<void>((resolve, reject) => pack.entry(header as tar.Header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
    return;
  }
  let sink!: Sink;
  const done = new Promise<void>((resolve, reject) => {
    sink = pack.entry(header as tar.Header, (err) => (err ? reject(err) : resolve()));
  });
  done.catch(() => undefined); // a failed read is reported by the loop below
  (sink as unknown as NodeJS.EventEmitter).on('error', () => undefined);
  let written = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    written += chunk.length;
    if (written > (header.size ?? 0)) throw new Error(`${file} grew while it was being archived`);
    if (!sink.write(chunk)) await once(sink as unknown as NodeJS.EventEmitter, 'drain');
  }
  if (written !== header.size) throw new Error(`${file} shrank while it was being archived`);
  (sink as unknown as { end(): void }).end();
  await done;
}

function asciiTail(s: string, max: number): string {
  const ascii = s.replace(/[^\x20-\x7e]/g, '_');
  return ascii.length <= max ? ascii : ascii.slice(ascii.length - max);
}

