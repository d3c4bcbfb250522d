// Compression and decompression. gzip runs in Node's zlib; bzip2, xz and zstd run as the Debian
// programs (Node 20's zlib has no zstd, and none has xz or bzip2), wrapped as one Duplex that
// fails with the program's stderr when it exits non-zero. Formats are told apart by their
// magic bytes, never by a file name.

import { Duplex, PassThrough, Readable } from 'node:stream';
import { KilnError } from '../errors.js';
import { childProcess, zlib } from '../lazy-modules.js';
import { STREAM_PIECE } from '../fs.js';
import { parallelGzip } from './parallel-gzip.js';

export type CompressionFormat = 'gzip' | 'bzip2' | 'xz' | 'zstd' | 'none';

export function detectCompression(head: Uint8Array): CompressionFormat {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 3 && b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (b.length >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/** A program as a stream filter: bytes in on stdin, bytes out of stdout. */
export function spawnFilter(program: string, args: string[]): Duplex {
  const child = childProcess().spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d.slice(0, 4096)));
  const out = new PassThrough();
  let exited = false;
  child.stdout.pipe(out, { end: false });
  const stdoutDone = new Promise<void>((r) => child.stdout.once('close', () => r()));
  child.once('error', (err) => out.destroy(new KilnError(`cannot run ${program}: ${err.message}`, { cause: err })));
  child.once('close', (code, signal) => {
    exited = true;
    void stdoutDone.then(() => {
      if (code === 0) out.end();
      else out.destroy(new KilnError(`${program} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim() || 'no message'}`));
    });
  });
  // The program may stop reading early (bad input); its exit status is the error that counts.
  // (EPIPE on stdin is expected then, so stdin sits behind a PassThrough that never sees it.)
  child.stdin.on('error', () => undefined);
  const input = new PassThrough();
  input.pipe(child.stdin);
  const duplex = Duplex.from({ writable: input, readable: out });
  duplex.on('close', () => {
    if (!exited) child.kill('SIGKILL');
  });
  return duplex;
}

export function decompressor(format: CompressionFormat): Duplex {
  switch (format) {
    case 'gzip':
      return zlib().createGunzip({ chunkSize: STREAM_PIECE });
    case 'bzip2':
      return spawnFilter('bzip2', ['-dc']);
    case 'xz':
      return spawnFilter('xz', ['-dc']);
    case 'zstd':
      return spawnFilter('zstd', ['-dcq']);
    case 'none':
      return new PassThrough();
  }
}

export type LayerCompressor = 'gzip' | 'zstd';

/**
 * A compressor on every CPU whose output depends only on its input and level: fixed gzip blocks
 * (parallel-gzip.ts); zstd's multi-threaded mode gives the same bytes for any thread count.
 */
export function compressor(kind: LayerCompressor, level?: number): Duplex {
  if (kind === 'gzip') return parallelGzip(level ?? -1);
  const lvl = level ?? 3;
  const args = ['-c', '-q', '-T0', `-${lvl}`];
  if (lvl > 19) args.unshift('--ultra');
  return spawnFilter('zstd', args);
}

/** Resolves with the first `n` bytes (fewer at end of stream) and a stream that still yields everything. */
export async function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let len = 0;
  const it = input[Symbol.asyncIterator]();
  let ended = false;
  while (len < n) {
    const r = (await it.next()) as IteratorResult<Buffer>;
    if (r.done) {
      ended = true;
      break;
    }
    const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    chunks.push(c);
    len += c.length;
  }
  const head = Buffer.concat(chunks);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (ended) return;
    for (;;) {
      const r = (await it.next()) as IteratorResult<Buffer>;
      if (r.done) return;
      yield r.value;
    }
  }
  return { head, stream: Readable.from(rest(), { objectMode: false }) };
}

/** The tar inside `input`, whatever it was compressed with (or not). */
export async function openDecompressed(input: Readable): Promise<Readable> {
  return (await sniffDecompressed(input)).stream;
}

export async function sniffDecompressed(input: Readable): Promise<{ format: CompressionFormat; stream: Readable }> {
  const { head, stream } = await peek(input, 6);
  const format = detectCompression(head);
  if (format === 'none') return { format, stream };
  const d = decompressor(format);
  stream.on('error', (err) => d.destroy(err));
  return { format, stream: stream.pipe(d) };
}
