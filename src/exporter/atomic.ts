// Outputs appear whole or not at all: written beside the destination under a temporary name,
// then renamed over it. A failed or interrupted export leaves the destination as it was. A
// device, FIFO or socket at the destination (/dev/stdout, /dev/null, a named pipe) is written
// into instead, as a shell's `>` would: a file renamed over it would replace the node itself.

import { closeSync, createWriteStream, openSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KilnError } from '../util/errors.js';
import { makeDirs } from '../util/fs.js';
import { processAlive } from '../store/sweep.js';
import { archiveChunks, writeArchiveToFd, type ArchiveFile } from '../util/tar/archive.js';

function siblingTemp(dest: string): string {
  const abs = resolve(dest);
  return join(dirname(abs), `${tempPrefix(abs)}${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

function tempPrefix(abs: string): string {
  return `.${basename(abs)}.kiln-`;
}

/**
 * Removes what a kiln killed while writing `dest` left beside it (its temporary file or folder,
 * named with its pid): nothing else ever would. Called before writing `dest` again.
 */
async function sweepStaleTemps(dest: string): Promise<void> {
  const abs = resolve(dest);
  const prefix = tempPrefix(abs);
  let names: string[];
  try {
    names = await readdir(dirname(abs));
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix) || !/\.tmp(\.old)?$/.test(n)) continue;
    const pid = Number(n.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid)) {
      await rm(join(dirname(abs), n), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

/** Streams into `dest` (a file path, or `-` for stdout). */
export async function writeStreamAtomic(dest: string, source: Readable, signal?: AbortSignal): Promise<void> {
  if (dest === '-') {
    try {
      await pipeline(source, process.stdout, { signal, end: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPIPE') throw new KilnError('the reader of standard output went away before the export finished');
      if (err instanceof KilnError) throw err;
      throw new KilnError(`cannot write to standard output: ${(err as Error).message}`, { cause: err });
    }
    return;
  }
  await writeOutputFile(dest, (path, fresh) => pipeline(source, createWriteStream(path, fresh ? { flags: 'wx', mode: 0o644 } : {}), { signal }));
}

/** The archive of `files` at `dest` (a file path, or `-` for stdout). */
export async function writeArchiveAtomic(dest: string, files: ArchiveFile[], signal?: AbortSignal): Promise<void> {
  if (dest === '-') return writeStreamAtomic(dest, Readable.from(archiveChunks(files), { objectMode: false }), signal);
  await writeOutputFile(dest, async (path, fresh) => {
    const fd = openSync(path, fresh ? 'wx' : 'w', 0o644);
    try {
      await writeArchiveToFd(fd, files, signal);
    } finally {
      closeSync(fd);
    }
  });
}

/**
 * `write` puts the output at `path`: a fresh temporary file beside `dest`, renamed over it once
 * whole, or `dest` itself when it is a device, FIFO or socket. Failures name `dest`.
 */
async function writeOutputFile(dest: string, write: (path: string, fresh: boolean) => Promise<void>): Promise<void> {
  try {
    const kind = await outputKind(dest);
    if (kind === 'folder') throw new KilnError(`cannot write ${dest}: it is a folder`);
    if (kind === 'special') return await write(dest, false);
    await makeParent(dest);
    const tmp = siblingTemp(dest);
    try {
      await write(tmp, true);
      await rename(tmp, resolve(dest));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError(`cannot write ${dest}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Fills a fresh folder via `fill`, then puts it at `dest`: whole, by one rename, when nothing is
 * there; else merged into the folder there, as BuildKit's local exporter does by default: what
 * the output has replaces what is in its way, and the rest of the folder stays. (Replacing the
 * whole folder made `-o .`, a common way to take a build's files, delete the project.)
 */
export async function writeDirAtomic(dest: string, fill: (dir: string) => Promise<void>): Promise<void> {
  const abs = resolve(dest);
  const kind = await outputKind(abs);
  if (kind !== 'none' && kind !== 'folder') throw new KilnError(`output ${dest} exists and is not a folder`);
  await makeParent(dest);
  const tmp = siblingTemp(dest);
  await mkdir(tmp, { mode: 0o755 });
  try {
    await fill(tmp);
    if (kind === 'folder') await mergeInto(tmp, abs);
    else await rename(tmp, abs);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Moves the entries of `from` into folder `to`. A folder on both sides is merged (and takes the
 * output's mode and times); anything else in the way, a link included, is replaced, never
 * followed.
 */
async function mergeInto(from: string, to: string): Promise<void> {
  for (const name of await readdir(from)) {
    const src = join(from, name);
    const dst = join(to, name);
    const s = await lstat(src);
    const d = await lstat(dst).catch(() => undefined);
    if (s.isDirectory() && d?.isDirectory()) {
      await mergeInto(src, dst);
      await chmod(dst, s.mode & 0o7777);
      await utimes(dst, s.atime, s.mtime);
      continue;
    }
    if (d) await rm(dst, { recursive: true, force: true });
    await rename(src, dst);
  }
}

/** The folder `dest` goes in, made when missing (a failure names `dest`), cleared of dead kilns' leftovers. */
async function makeParent(dest: string): Promise<void> {
  try {
    makeDirs(dirname(resolve(dest)));
  } catch (err) {
    throw new KilnError(`cannot write ${dest}: ${(err as Error).message}`, { cause: err });
  }
  await sweepStaleTemps(dest);
}

/**
 * What is at `dest`: nothing (or a dangling link, which the rename replaces), a file, a folder,
 * or a device, FIFO or socket, which is written into rather than replaced.
 */
async function outputKind(dest: string): Promise<'none' | 'file' | 'folder' | 'special'> {
  let st;
  try {
    st = await stat(dest);
  } catch {
    return 'none';
  }
  return st.isDirectory() ? 'folder' : st.isFile() ? 'file' : 'special';
}

/** A small file (`what`: the flag that named it) at `dest`, whole or not at all; its folder must exist. */
export async function writeSmallFileAtomic(dest: string, text: string, what: string): Promise<void> {
  const fail = (why: string, cause?: unknown) => new KilnError(`${what} ${dest}: cannot write it: ${why}`, { cause, exitCode: 1 });
  const kind = await outputKind(dest);
  if (kind === 'folder') throw fail('it is a folder');
  try {
    if (kind === 'special') return await writeFile(dest, text);
    const tmp = siblingTemp(dest);
    try {
      await writeFile(tmp, text, { flag: 'wx' });
      await rename(tmp, resolve(dest));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  } catch (err) {
    throw fail((err as Error).message, err);
  }
}
