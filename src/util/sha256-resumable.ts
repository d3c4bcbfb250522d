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

export class ResumableSha256 {
  private pending: Promise<void> = Promise.resolve();
  private waiting = 0;
  private drains: { bytes: number; resolve: () => void }[] = [];
  /** An update failed: the ones queued after it never run, and `digest` rejects. */
  private failed = false;

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
    if (this.failed || this.waiting <= bytes) return Promise.resolve();
    return new Promise((resolve) => this.drains.push({ bytes, resolve }));
  }

  private hashed(bytes: number, failed: boolean): void {
    this.waiting -= bytes;
    this.failed ||= failed;
    this.drains = this.drains.filter((d) => {
      if (!this.failed && this.waiting > d.bytes) return true;
      d.resolve();
      return false;
    });
  }

  /**
   * Queues `data` to be hashed on a thread-pool thread, after the updates queued before it.
   * `data` must not change until `digest` resolves.
   */
  update(data: Uint8Array): void {
    if (data.length === 0) return;
    this.length += data.length;
    this.waiting += data.length;
    this.pending = this.pending.then(
      () =>
        new Promise<void>((resolve, reject) => {
          this.f.update.async(this.ctx, data, data.length, (err: unknown, ok: number) => {
            this.hashed(data.length, Boolean(err) || ok !== 1);
            if (err) reject(err instanceof Error ? err : new Error(String(err)));
            else if (ok !== 1) reject(new Error('SHA256_Update failed'));
            else resolve();
          });
        }),
    );
    this.pending.catch(() => undefined); // reported by digest(), which may never be asked for after another failure
  }

  /** The state after the updates queued so far (later ones do not wait for it), to resume from. */
  saveState(): Promise<Buffer> {
    const saved = this.pending.then(() => Buffer.from(this.ctx));
    this.pending = saved.then(() => undefined);
    this.pending.catch(() => undefined);
    return saved;
  }

  async digest(): Promise<Digest> {
    await this.pending;
    const md = Buffer.alloc(32);
    if (this.f.final(md, Buffer.from(this.ctx)) !== 1) throw new Error('SHA256_Final failed');
    return `sha256:${md.toString('hex')}`;
  }
}
