// The safe tar extractor. Every entry is checked before anything touches the disk: names are
// cleaned inside the destination (no `..` above it), no parent that is a symlink (so nothing is
// ever written through a link), no relative symlink or hard link whose target leaves the
// destination. A refused entry is a KilnError and nothing is created outside `destDir`.
//
// Whiteouts: 'overlay' keeps them as overlayfs does (char device 0/0, opaque xattr) for snapshot
// folders; 'apply' carries them out (deletes the named paths) for ADD and filesystem exports.
//
// Names are bytes, which need not be UTF-8 (a file a RUN step named in Latin-1): they are read
// as latin1 strings, one char per byte, and every path handed to the file system is a Buffer of
// those bytes. What the extractor returns is UTF-8 again.

import {
  constants as fsc,
  type Stats,
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  opendirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { KilnError } from '../errors.js';
import { makeWhiteout, mknod, setXattr, S_IFBLK, S_IFCHR, S_IFIFO, SyscallError } from '../syscalls.js';
import { XATTR_PREFIX } from './pax.js';
import { OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX } from '../overlay-format.js';
import { sparseEntry, SparseWriter } from './sparse.js';
import { TarReader, type EntrySink, type TarEntryHeader } from './reader.js';

export type WhiteoutMode = 'overlay' | 'apply';

export interface ExtractOptions {
  whiteouts: WhiteoutMode;
  /** Shown in errors: which archive this was. */
  label?: string;
  /** Stops the extraction between pieces of the archive (what is written stays, for the caller to remove). */
  signal?: AbortSignal;
}

export interface ExtractStats {
  /** Entries read, whiteout markers included. */
  entries: number;
  /** Relative paths of the directories the archive names (not those made only as parents). */
  dirs: Set<string>;
  /** 'apply' mode: what the archive's whiteouts name, for a caller applying it onto more than `destDir`. */
  whiteouts: { removed: string[]; opaque: string[] };
}

/**
 * Splits an entry name into clean components, or explains why it may not be extracted. Names are
 * cleaned as Docker's and containerd's extractors clean them: an absolute name is taken inside the
 * destination (`/etc/x` is `etc/x`, and `..` stops at its root), `a/../b` is `b`, and only a
 * relative name whose `..` climbs above the destination is refused.
 */
export function cleanEntryPath(name: string): string[] | string {
  const rooted = name.startsWith('/');
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p !== '..') parts.push(p);
    else if (parts.length > 0) parts.pop();
    else if (!rooted) return 'path with .. leading out of the destination';
  }
  return parts;
}

const isRoot = process.getuid?.() === 0;

/** Whether `dir` has no entry (one is read, not the whole listing). */
function isEmptyDir(dir: string): boolean {
  let d;
  try {
    d = opendirSync(dir);
    return d.readSync() === null;
  } catch {
    return false;
  } finally {
    d?.closeSync();
  }
}

export async function extractTar(input: Readable, destDir: string, opts: ExtractOptions): Promise<ExtractStats> {
  const root = posix.resolve(destDir);
  const label = opts.label ?? 'archive';
  const knownDirs = new Set<string>(['']);
  const namedDirs = new Set<string>();
  const whiteouts: ExtractStats['whiteouts'] = { removed: [], opaque: [] };
  /** Paths this archive created, so an opaque marker in apply mode spares them. */
  const written = new Set<string>();
  const dirTimes: Array<{ path: Buffer; mtime: Date }> = [];
  let entries = 0;

  const refuse = (entry: string, why: string): never => {
    throw new KilnError(`${label}: refusing to extract "${utf8(entry)}": ${utf8(why)}`);
  };

  const rootBytes = Buffer.from(root);
  /** The host path of `rel` (a latin1 byte string). */
  const abs = (rel: string): Buffer => (rel === '' ? rootBytes : Buffer.concat([rootBytes, Buffer.from(`/${rel}`, 'latin1')]));

  const lstatOrNull = (p: Buffer): Stats | null => lstatSync(p, { throwIfNoEntry: false }) ?? null;
  // Into a folder that started empty (a new snapshot, an ADD's scratch folder), nothing can be
  // in an entry's way but what the archive itself wrote: its lstat is skipped (one a file,
  // ~0.3 s of unpacking a 57,000-entry tar here).
  const startedEmpty = isEmptyDir(root);
  const lstatIfAny = (rel: string): Stats | null => (startedEmpty && !written.has(rel) ? null : lstatOrNull(abs(rel)));

  /** Makes sure every parent of `parts` is a real directory inside root, creating missing ones. */
  const ensureParents = (entry: string, parts: string[], create: boolean): boolean => {
    let rel = '';
    for (const p of parts.slice(0, -1)) {
      rel = rel === '' ? p : `${rel}/${p}`;
      if (knownDirs.has(rel)) continue;
      const st = lstatIfAny(rel);
      if (st === null) {
        if (!create) return false;
        mkdirSync(abs(rel), { mode: 0o755 });
        written.add(rel);
      } else if (st.isSymbolicLink()) {
        refuse(entry, `its parent ${rel} is a symlink (writing through it could leave the destination)`);
      } else if (!st.isDirectory()) {
        if (opts.whiteouts === 'apply' && create) {
          rmSync(abs(rel), { force: true });
          mkdirSync(abs(rel), { mode: 0o755 });
          written.add(rel);
        } else {
          refuse(entry, `its parent ${rel} is not a directory`);
        }
      }
      knownDirs.add(rel);
    }
    return true;
  };

  const removeExisting = (rel: string): void => {
    rmSync(abs(rel), { recursive: true, force: true });
    for (const d of knownDirs) if (d === rel || d.startsWith(rel + '/')) knownDirs.delete(d);
  };

  const setOwner = (p: Buffer, uid: number, gid: number) => {
    try {
      lchownSync(p, uid, gid);
    } catch (err) {
      if (isRoot) throw err;
    }
  };

  const setXattrs = (p: Buffer, pax: Record<string, string> | null | undefined) => {
    if (!pax) return;
    for (const [k, v] of Object.entries(pax)) {
      if (!k.startsWith(XATTR_PREFIX)) continue;
      const name = k.slice(XATTR_PREFIX.length);
      // An archive must not steer overlayfs (redirects, opaque flags): only kiln writes those.
      if (name.startsWith('trusted.overlay.')) continue;
      try {
        setXattr(p, name, Buffer.from(v, 'latin1'));
      } catch (err) {
        if (err instanceof SyscallError && (err.code === 'EOPNOTSUPP' || err.code === 'EPERM') && !name.startsWith('security.capability')) continue;
        throw err;
      }
    }
  };

  // Every file system call is synchronous: a thread-pool round trip per call (~0.1-0.4 ms here)
  // was most of unpacking a base image of 9,000 small files.
  const handle = (h: TarEntryHeader): EntrySink | undefined => {
    const pax = h.pax;
    const sparse = sparseEntry(pax, (why) => refuse(h.name, why));
    const entry = sparse?.name ?? h.name;
    const cleaned = cleanEntryPath(entry);
    if (typeof cleaned === 'string') return refuse(entry, cleaned);
    if (cleaned.length === 0) return; // the root itself: its attributes belong to the destination
    const rel = cleaned.join('/');
    const base = cleaned[cleaned.length - 1]!;
    const parentRel = cleaned.slice(0, -1).join('/');

    if (base.startsWith(WHITEOUT_PREFIX)) {
      if (opts.whiteouts === 'apply') {
        if (base === OPAQUE_MARKER) whiteouts.opaque.push(parentRel);
        else if (![WHITEOUT_PREFIX, `${WHITEOUT_PREFIX}.`, `${WHITEOUT_PREFIX}..`].includes(base)) {
          whiteouts.removed.push(parentRel === '' ? base.slice(WHITEOUT_PREFIX.length) : `${parentRel}/${base.slice(WHITEOUT_PREFIX.length)}`);
        }
      }
      if (!ensureParents(entry, cleaned, opts.whiteouts === 'overlay')) return;
      if (base === OPAQUE_MARKER) {
        if (opts.whiteouts === 'overlay') {
          setXattr(abs(parentRel), OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
        } else {
          for (const child of readdirSync(abs(parentRel), { encoding: 'buffer' })) {
            const childRel = parentRel === '' ? child.toString('latin1') : `${parentRel}/${child.toString('latin1')}`;
            if (!written.has(childRel)) removeExisting(childRel);
          }
        }
        return;
      }
      const target = base.slice(WHITEOUT_PREFIX.length);
      if (target === '' || target === '.' || target === '..') return refuse(entry, 'bad whiteout name');
      const targetRel = parentRel === '' ? target : `${parentRel}/${target}`;
      removeExisting(targetRel);
      if (opts.whiteouts === 'overlay') {
        makeWhiteout(abs(targetRel));
        utimesSync(abs(targetRel), h.mtime, h.mtime);
        written.add(targetRel);
      }
      return;
    }

    ensureParents(entry, cleaned, true);
    const path = abs(rel);
    const existing = lstatIfAny(rel);
    if (existing && !(existing.isDirectory() && h.type === 'directory')) removeExisting(rel);
    written.add(rel);
    const mode = h.mode & 0o7777;
    const { mtime, uid, gid } = h;

    switch (h.type) {
      case 'directory': {
        if (!existing || !existing.isDirectory()) mkdirSync(path, { mode: 0o700 });
        knownDirs.add(rel);
        namedDirs.add(rel);
        setOwner(path, uid, gid);
        chmodSync(path, mode);
        setXattrs(path, pax);
        dirTimes.push({ path, mtime });
        return;
      }
      case 'file':
      case 'contiguous-file': {
        const fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
        const sparseWriter = sparse && new SparseWriter(fd, sparse, (why) => refuse(entry, why));
        return {
          data: (chunk) => {
            if (sparseWriter) sparseWriter.data(chunk);
            else for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
          },
          end: () => {
            try {
              sparseWriter?.end();
              try {
                fchownSync(fd, uid, gid);
              } catch (err) {
                if (isRoot) throw err;
              }
              fchmodSync(fd, mode); // after chown, which clears setuid/setgid
              setXattrs(path, pax);
              futimesSync(fd, mtime, mtime);
            } finally {
              closeSync(fd);
            }
          },
          abort: () => closeSync(fd),
        };
      }
      case 'symlink': {
        const target = h.linkname ?? '';
        if (!target.startsWith('/')) {
          const resolved = posix.normalize(posix.join(parentRel === '' ? '.' : parentRel, target));
          if (resolved === '..' || resolved.startsWith('../')) return refuse(entry, `symlink to ${target} points outside the destination`);
        }
        symlinkSync(Buffer.from(target, 'latin1'), path);
        setOwner(path, uid, gid);
        setXattrs(path, pax);
        lutimesSync(path, mtime, mtime);
        return;
      }
      case 'link': {
        const t = cleanEntryPath(h.linkname ?? '');
        if (typeof t === 'string' || t.length === 0) return refuse(entry, `hard link to ${h.linkname}: ${typeof t === 'string' ? t : 'empty target'}`);
        if (!ensureParents(entry, t, false)) return refuse(entry, `hard link target ${h.linkname} does not exist`);
        const tst = lstatOrNull(abs(t.join('/')));
        if (!tst) return refuse(entry, `hard link target ${h.linkname} does not exist`);
        if (tst.isDirectory()) return refuse(entry, `hard link to directory ${h.linkname}`);
        linkSync(abs(t.join('/')), path);
        return;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        const kind = h.type === 'fifo' ? S_IFIFO : h.type === 'block-device' ? S_IFBLK : S_IFCHR;
        mknod(path, kind | mode, h.devmajor ?? 0, h.devminor ?? 0);
        setOwner(path, uid, gid);
        chmodSync(path, mode);
        setXattrs(path, pax);
        utimesSync(path, mtime, mtime);
        return;
      }
      default:
        // A type the reader does not know: a GNU sparse file ('S'), a volume label, ... (Docker's
        // extractor refuses them too).
        return refuse(entry, 'an entry of a type that is not extracted (a GNU sparse file? use --format=posix)');
    }
  };

  const reader = new TarReader((h) => {
    entries++;
    return handle(h);
  });
  try {
    // Leaving the loop on an error destroys the input. Bytes after the end blocks are read and
    // dropped (as Docker's extractor ignores them), not left to a writer that would get EPIPE.
    for await (const chunk of input as AsyncIterable<Buffer>) {
      opts.signal?.throwIfAborted();
      reader.push(chunk);
    }
    reader.finish();
  } catch (err) {
    reader.abort();
    if (err instanceof KilnError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new KilnError(`${label}: cannot extract: ${msg}`, { cause: err });
  }
  // Creating children changed the directories' mtimes: restore them, deepest first.
  for (const { path, mtime } of dirTimes.reverse()) utimesSync(path, mtime, mtime);
  return {
    entries,
    dirs: new Set([...namedDirs].map(utf8)),
    whiteouts: { removed: whiteouts.removed.map(utf8), opaque: whiteouts.opaque.map(utf8) },
  };
}

/** A latin1 byte string (see the top of this file) as the UTF-8 text it holds. */
function utf8(bytes: string): string {
  return Buffer.from(bytes, 'latin1').toString('utf8');
}
