// A deterministic tar of named files (not a folder walk): the OCI layout and docker-archive
// outputs. Entries sorted by name, owner 0/0, a fixed mtime. Bodies are read with blocking calls
// in pieces of a megabyte, and a file destination is written the same way: through a write
// stream, each piece cost a thread-pool round trip (~1 ms on this machine kind), most of the
// time of exporting a small image.

import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { KilnError } from '../errors.js';
import { turn } from '../event-loop.js';
import { END_OF_ARCHIVE, headerBlocks, padding } from './header.js';

export interface ArchiveFile {
  /** Path inside the archive, `/`-separated, no leading slash. */
  name: string;
  size: number;
  /** The body: bytes, or a host file of exactly `size` bytes (`label` names it in errors). */
  body: Buffer | { path: string; label: string };
}

const PIECE = 1 << 20;

/**
 * The archive's bytes in order; a file body that is not exactly its size is an error. With
 * `scratch`, file bodies are read into it, each piece valid only until the next is asked for
 * (a consumer that writes each piece before the next); else every piece is a fresh buffer.
 */
export function* archiveChunks(files: ArchiveFile[], mtimeSecs = 0, scratch?: Buffer): Generator<Buffer> {
  const mtime = new Date(mtimeSecs * 1000);
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.name.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/') + '/');
  }
  type Item = { name: string; dir: true } | ({ dir: false } & ArchiveFile);
  const items: Item[] = [...[...dirs].map((name) => ({ name, dir: true as const })), ...files.map((f) => ({ ...f, dir: false as const }))];
  items.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  for (const it of items) {
    if (it.dir) {
      yield* headerBlocks({ name: it.name, type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime });
      continue;
    }
    yield* headerBlocks({ name: it.name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: it.size, mtime });
    if (Buffer.isBuffer(it.body)) {
      if (it.body.length !== it.size) throw new Error(`archive entry ${it.name}: ${it.body.length} bytes, not ${it.size}`);
      yield it.body;
    } else {
      yield* fileBody(it.body, it.size, scratch);
    }
    const pad = padding(it.size);
    if (pad) yield pad;
  }
  yield END_OF_ARCHIVE;
}

function* fileBody(body: { path: string; label: string }, size: number, scratch?: Buffer): Generator<Buffer> {
  let fd: number;
  try {
    fd = openSync(body.path, 'r');
  } catch (err) {
    throw new KilnError(`${body.label} is not in the store`, { cause: err });
  }
  try {
    let seen = 0;
    for (;;) {
      // One byte more than is left, to see a file longer than its size.
      const want = Math.min(PIECE, Math.max(size - seen, 0) + 1);
      const buf = scratch && scratch.length >= want ? scratch.subarray(0, want) : Buffer.allocUnsafe(want);
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      seen += n;
      if (seen > size) break;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
    if (seen !== size) throw new KilnError(`${body.label} in the store is corrupt (${seen > size ? 'more than ' : ''}${seen} bytes, not ${size})`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes the archive to the open file `fd` with blocking writes, returning to the event loop
 * every few megabytes so that Ctrl-C (`signal`) is heard.
 */
export async function writeArchiveToFd(fd: number, files: ArchiveFile[], signal?: AbortSignal): Promise<void> {
  let sinceYield = 0;
  // Each piece is written before the next is read: one buffer serves them all (fresh ones cost
  // an allocation and its page faults per megabyte).
  for (const chunk of archiveChunks(files, 0, Buffer.allocUnsafe(PIECE))) {
    for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
    sinceYield += chunk.length;
    if (sinceYield >= 16 * PIECE) {
      sinceYield = 0;
      await turn();
      signal?.throwIfAborted();
    }
  }
}
