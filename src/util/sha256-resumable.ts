// SHA-256 whose running state can be saved and taken up again later, in another process: the
// SHA256_* functions of the OpenSSL that Node itself carries, reached through koffi. Node's own
// crypto cannot export a hash's state. A layer tar that begins with the same bytes as an
// earlier one resumes from a state saved while that one was hashed (util/tar/hash.ts), and
// big updates run on a thread-pool thread instead of the event loop.

import { createHash } from 'node:crypto';
import type { Digest } from '../graph/ops.js';
import { loadKoffi, type NativeFunction } from './koffi.js';

/** sizeof(SHA256_CTX): eight state words, the 64-bit length, a 64-byte block, two counters. */
export const SHA256_STATE_BYTES = 112;

interface Sha256Functions {
  init: NativeFunction;
  update: NativeFunction;
  final: NativeFunction;
}

let bound: Sha256Functions | null | undefined;

/** OpenSSL's SHA-256, or null when this Node does not expose it (or it does not behave). */
function openssl(): Sha256Functions | null {
  if (bound !== undefined) return bound;
  try {
    const koffi = loadKoffi();
    // The process itself: Node exports the OpenSSL it links, for addons.
    const self = koffi.load(null);
    bound = {
      init: self.func('int SHA256_Init(void *ctx)'),
      update: self.func('int SHA256_Update(void *ctx, const void *data, size_t len)'),
      final: self.func('int SHA256_Final(_Out_ uint8_t *md, void *ctx)'),
    };
    if (!selfTest(bound)) bound = null;
  } catch {
    bound = null;
  }
  return bound;
}

/**
 * One hash split across a saved state, checked against Node's: a struct of another size or
 * layout would give wrong digests, never an error.
 */
function selfTest(f: Sha256Functions): boolean {
  const data = Buffer.from('kiln checks that a saved SHA-256 state resumes to the same digest '.repeat(5));
  const a = Buffer.alloc(SHA256_STATE_BYTES);
  if (f.init(a) !== 1 || f.update(a, data, 77) !== 1) return false;
  const b = Buffer.from(a);
  if (f.update(b, data.subarray(77), data.length - 77) !== 1) return false;
  const md = Buffer.alloc(32);
  if (f.final(md, b) !== 1) return false;
  return md.toString('hex') === createHash('sha256').update(data).digest('hex');
}

export function resumableSha256Available(): boolean {
  return openssl() !== null;
}

/** Pieces this large go to the pool as they are; smaller ones are copied together, up to BATCH_BYTES. */
const LARGE_UPDATE = 1 << 20;
const BATCH_BYTES = 8 << 20;

/** A state to hand over once every update queued before it is hashed. */
interface SavePoint {
  resolve(state: Buffer): void;
  reject(err: Error): void;
}

export class ResumableSha256 {
  /** Updates and save points, in order, not yet handed to the thread pool. */
  private queue: Array<Uint8Array | SavePoint> = [];
  private running = false;
  private waiting = 0;
  private drains: { bytes: number; resolve: () => void }[] = [];
  private idle: Array<() => void> = [];
  /** An update failed: nothing queued after it runs, and `digest` rejects with this. */
  private error: Error | undefined;
  private scratchBuffer: Buffer | undefined;

  private constructor(
    private readonly f: Sha256Functions,
    private readonly ctx: Buffer,
    private length: number,
  ) {}

  /** A new hash, or undefined when OpenSSL's SHA-256 is not reachable. */
  static start(): ResumableSha256 | undefined {
    const f = openssl();
    if (!f) return undefined;
    const ctx = Buffer.alloc(SHA256_STATE_BYTES);
    if (f.init(ctx) !== 1) return undefined;
    return new ResumableSha256(f, ctx, 0);
  }

  /** The hash of `length` bytes whose state `saveState` returned. */
  static resume(state: Buffer, length: number): ResumableSha256 | undefined {
    const f = openssl();
    if (!f || state.length !== SHA256_STATE_BYTES) return undefined;
    return new ResumableSha256(f, Buffer.from(state), length);
  }

  /** Bytes hashed so far (queued updates included). */
  get bytes(): number {
    return this.length;
  }

  /**
   * Resolves once at most `bytes` are queued: a producer ahead of the hash waits on this, or
   * everything it hands over is held in memory until hashed. (Also resolves when an update
   * fails: `digest` reports the failure.)
   */
  queuedAtMost(bytes: number): Promise<void> {
    if (this.error || this.waiting <= bytes) return Promise.resolve();
    return new Promise((resolve) => this.drains.push({ bytes, resolve }));
  }

  /**
   * Queues `data` to be hashed on a thread-pool thread, after the updates queued before it.
   * `data` must not change until `digest` resolves. Small updates queued while one is on the pool
   * go together as the next: a tar comes in 512-byte headers and small files' pieces, and each
   * trip to the pool (one at a time) costs ~0.2 ms here, as much as hashing 300 KB.
   */
  update(data: Uint8Array): void {
    if (data.length === 0) return;
    this.length += data.length;
    this.waiting += data.length;
    this.queue.push(data);
    this.pump();
  }

  /** The state after the updates queued so far (later ones do not wait for it), to resume from. */
  saveState(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.pump();
    });
  }

  async digest(): Promise<Digest> {
    if (this.running || this.queue.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (this.error) throw this.error;
    const md = Buffer.alloc(32);
    if (this.f.final(md, Buffer.from(this.ctx)) !== 1) throw new Error('SHA256_Final failed');
    return `sha256:${md.toString('hex')}`;
  }

  private get scratch(): Buffer {
    return (this.scratchBuffer ??= Buffer.allocUnsafe(BATCH_BYTES));
  }

  private pump(): void {
    if (this.running) return;
    // Save points at the head see the state of everything before them.
    while (this.queue.length > 0 && !(this.queue[0] instanceof Uint8Array)) {
      const point = this.queue.shift() as SavePoint;
      if (this.error) point.reject(this.error);
      else point.resolve(Buffer.from(this.ctx));
    }
    if (this.queue.length === 0 || this.error) {
      this.dropQueued();
      for (const resolve of this.idle.splice(0)) resolve();
      return;
    }
    const batch = this.nextBatch();
    this.running = true;
    this.f.update.async(this.ctx, batch, batch.length, (err: unknown, ok: number) => {
      this.running = false;
      if (err || ok !== 1) this.error ??= err instanceof Error ? err : new Error(err ? String(err) : 'SHA256_Update failed');
      this.hashed(batch.length);
      this.pump();
    });
  }

  /**
   * The next update for the pool: a large piece as it is, else the small pieces at the head of
   * the queue copied together into the one scratch buffer (free again: one update runs at a
   * time). A trip to the pool costs about what copying a few hundred KiB does.
   */
  private nextBatch(): Uint8Array {
    const head = this.queue[0] as Uint8Array;
    if (head.length >= LARGE_UPDATE) {
      this.queue.shift();
      return head;
    }
    let used = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (!(next instanceof Uint8Array) || next.length >= LARGE_UPDATE || used + next.length > BATCH_BYTES) break;
      this.scratch.set(next, used);
      used += next.length;
      this.queue.shift();
    }
    return this.scratch.subarray(0, used);
  }

  /** After a failure: what was queued is never hashed, and save points behind it fail. */
  private dropQueued(): void {
    for (const item of this.queue.splice(0)) {
      if (item instanceof Uint8Array) this.hashed(item.length);
      else item.reject(this.error!);
    }
  }

  private hashed(bytes: number): void {
    this.waiting -= bytes;
    this.drains = this.drains.filter((d) => {
      if (!this.error && this.waiting > d.bytes) return true;
      d.resolve();
      return false;
    });
  }
}
