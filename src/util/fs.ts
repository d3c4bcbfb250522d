import { readSync } from 'node:fs';
import { lstat, readdir, rename } from 'node:fs/promises';

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
 * Renames a staged folder to `dest`. When another process put an equal one there first
 * (content-addressed or idempotent results), theirs is kept: returns false and leaves `src`.
 */
export async function renameIntoPlace(src: string, dest: string): Promise<boolean> {
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
