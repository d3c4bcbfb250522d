// gzip made on several CPUs at once, in the layout pigz uses: the input is cut into blocks at
// fixed offsets, each block is deflated by itself on the thread pool with the 32 KiB before it as
// its dictionary (so matches still reach back across the cut), and each ends with a sync flush
// (empty stored block, byte-aligned) instead of a final block, so the raw deflate streams join
// into one. Only the last is finished. A gzip header and the CRC-32 and length trailer frame them.
//
// Node's createGzip deflates on one thread: a single large layer compressed at ~33 MB/s here
// while the other CPU sat idle. A block whose samples do not compress is stored (see
// incompressible()). The bytes out depend only on the input and the level (block size and samples
// are fixed, whatever the input's chunking or the threads' timing), as an image digest must.

import { Transform, type TransformCallback } from 'node:stream';
import { availableParallelism } from 'node:os';
import type { ZlibOptions } from 'node:zlib';
import pLimit from 'p-limit';
import { zlib } from '../lazy-modules.js';

/** Input bytes per independently deflated block. Changing it changes every gzip digest kiln makes. */
export const GZIP_BLOCK = 1 << 20;
/** What deflate can refer back to: the dictionary each block is primed with. */
const WINDOW = 32 << 10;

const CPUS = availableParallelism();
// One more job than CPUs keeps each busy while the event loop hands over the next block; the
// limit is shared by every stream so that concurrent layers leave the pool a thread for files.
const deflateSlots = pLimit(CPUS + 1);
/** Blocks a stream keeps under way (running or waiting for a slot) before it takes more input. */
const QUEUE = CPUS + 2;

interface Job {
  done: Promise<Buffer>;
}

function deflate(data: Buffer, opts: ZlibOptions): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    // Output for a whole block in one piece: one trip to the pool per call.
    const chunkSize = Math.max(64 << 10, data.length + (data.length >> 3) + 1024);
    zlib().deflateRaw(data, { ...opts, chunkSize }, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

/**
 * Bytes in each sample a block is tested with (twice deflate's window, so a repeat deflate can use
 * shows in one sample), and how many samples, spread over the block.
 */
const SAMPLE = 64 << 10;
const SAMPLES = 4;

/**
 * Whether every sample of the block stays at 98% or more of its size at level 1: data already
 * compressed (archives, images, video) or random. Such a block is stored: deflating it at level 6
 * took ~9 times as long to come out the same size. The samples go one by one and stop at the first
 * that compresses, so ordinary data pays one 64 KiB deflate at level 1 a block (~3%).
 */
async function incompressible(block: Buffer): Promise<boolean> {
  if (block.length < SAMPLES * SAMPLE) return false;
  for (let k = 0; k < SAMPLES; k++) {
    const at = Math.floor(((block.length - SAMPLE) * k) / (SAMPLES - 1));
    const out = await deflate(block.subarray(at, at + SAMPLE), { level: 1 });
    if (out.length < SAMPLE * 0.98) return false;
  }
  return true;
}

function deflateBlock(block: Buffer, dictionary: Buffer | undefined, level: number, last: boolean): Promise<Buffer> {
  const z = zlib();
  const finishFlush = last ? z.constants.Z_FINISH : z.constants.Z_SYNC_FLUSH;
  return deflateSlots(async () => {
    if (level > 0 && (await incompressible(block))) return deflate(block, { level: 0, finishFlush });
    return deflate(block, { level, finishFlush, ...(dictionary ? { dictionary } : {}) });
  });
}

function gzipHeader(level: number): Buffer {
  // As zlib writes it: no name, mtime 0, the extra-flags hint for the level, OS 3 (Unix).
  const xfl = level === 9 ? 2 : level >= 0 && level <= 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
}

class ParallelGzip extends Transform {
  private readonly level: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The last WINDOW bytes before the block being gathered. */
  private window: Buffer | undefined;
  private readonly queue: Job[] = [];
  private crc = 0;
  private total = 0;

  constructor(level: number) {
    super();
    this.level = level;
    this.push(gzipHeader(level));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.crc = zlib().crc32(chunk, this.crc);
    this.total += chunk.length;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= GZIP_BLOCK) this.startBlock(this.takeBlock(GZIP_BLOCK), false);
    this.drain(QUEUE - 1).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.startBlock(this.takeBlock(this.pendingBytes), true);
    this.drain(0).then(() => {
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.total % 2 ** 32, 4);
      cb(null, trailer);
    }, cb);
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    // Blocks under way finish on the pool; their output is dropped, their failures too.
    for (const j of this.queue) j.done.catch(() => {});
    this.queue.length = 0;
    cb(err);
  }

  private takeBlock(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const block = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return block;
  }

  private startBlock(block: Buffer, last: boolean): void {
    const dictionary = this.window;
    // Every block but the last is GZIP_BLOCK long, longer than the window.
    this.window = block.subarray(Math.max(0, block.length - WINDOW));
    const job: Job = { done: deflateBlock(block, dictionary, this.level, last) };
    // A failure is reported when its turn comes, in order; until then it is not unhandled.
    job.done.catch(() => {});
    this.queue.push(job);
  }

  /** Hands on finished blocks, in order, until at most `keep` are under way. */
  private async drain(keep: number): Promise<void> {
    while (this.queue.length > keep) {
      const out = await this.queue[0]!.done;
      this.queue.shift();
      if (this.destroyed) return;
      this.push(out);
    }
  }
}

/** A gzip compressor using every CPU, whose bytes depend only on its input and `level` (zlib's -1 to 9). */
export function parallelGzip(level: number): Transform {
  return new ParallelGzip(level === -1 ? 6 : level);
}
