import { createReadStream, mkdirSync, readSync, statSync, type ReadStream } from 'node:fs';
import { lstat, readdir, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { renameNoReplace } from './syscalls.js';

/**
 * Size of the pieces files are read and (de)compressed in. Node's defaults (64 KiB reads, 16 KiB
 * zlib output) cost a thread-pool round trip per piece, which on a VM with dear syscalls is most
 * of the time: reading a 170 MB file took ~1 s in 64 KiB pieces and 0.1 s in 1 MiB ones, and
 * gunzipping it ~3 s with 16 KiB of output at a time and 0.5 s with 1 MiB.
 */
export const STREAM_PIECE = 1 << 20;

/** A file's bytes (from `start` to `end`, inclusive, when given) as a stream of STREAM_PIECE reads. */
export function fileStream(path: string, range: { start?: number; end?: number } = {}): ReadStream {
  return createReadStream(path, { ...range, highWaterMark: STREAM_PIECE });
}

/** True when something (a file, a folder, even a dangling link) is at `p`. */
export async function pathExists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** The names in folder `dir`; none when it is missing (store folders are made on demand). */
export async function namesIn(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/**
 * Renames a staged folder to `dest`. When another process put one there first (content-addressed
 * or idempotent results), theirs is kept, even an empty one that a plain rename would replace
 * while it is in use: returns false and leaves `src`.
 */
export async function renameIntoPlace(src: string, dest: string): Promise<boolean> {
  const done = renameNoReplace(src, dest);
  if (done !== undefined) return done;
  try {
    await rename(src, dest);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
    return false;
  }
}

/** Reads `length` bytes at `position` of `fd` into `buf`, fewer only at the end of the file; the count read. */
export function readFullAt(fd: number, buf: Buffer, position: number, length = buf.length): number {
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

// Node's own recursive mkdir never returns when the kernel answers ENOENT for a folder whose
// parent exists (procfs does: `--root /proc/x` spun at full CPU for good). This makes each
// missing parent once, and a second ENOENT is the answer. For paths a user names; synchronous,
// as a few mkdir calls cost less than their thread-pool round trips.

/** `mkdir -p dir`. */
export function makeDirs(dir: string): void {
  try {
    mkdirSync(dir);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && isDir(dir)) return;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
  }
  makeDirs(dirname(dir));
  try {
    mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !isDir(dir)) throw err;
  }
}

/** Whether `p` is a folder (following a symlink); false when it is missing or unreadable. */
export function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
