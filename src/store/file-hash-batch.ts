// Small files' SHA-256 for content keys, hashed in batches by native/files/hashfiles.c on
// thread-pool threads (two batches at a time) while the event loop walks on: read and hashed
// inline, a context of 20,000 small files kept the event loop busy for over a second on one
// CPU. A batch goes when it is full or at the event loop's next turn, whichever comes first.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pLimit from 'p-limit';
import type { Digest } from '../graph/ops.js';
import { KilnError } from '../util/errors.js';
import { HASH_UNAVAILABLE, callNative, nativeFiles } from '../util/native-files.js';
import type { NativeFunction } from '../util/koffi.js';

const BATCH_FILES = 256;
const IN_FLIGHT = 2;
/**
 * A batch this small is hashed inline when it goes: the thread-pool round trip (~1 ms) costs more
 * than reading and hashing a few small files, which is what a rebuild usually finds changed.
 */
const INLINE_FILES = 4;
const INLINE_BYTES = 64 << 10;

interface Waiter {
  resolve(d: Digest): void;
  reject(e: unknown): void;
}

class SmallFileHasher {
  private paths: Buffer[] = [];
  private waiters: Waiter[] = [];
  private bytes = 0;
  private scheduled = false;
  private readonly limit = pLimit(IN_FLIGHT);
  /** Set once the library said it cannot hash in this process. */
  private unavailable = false;

  constructor(private readonly hashFiles: NativeFunction) {}

  hash(host: string, size: number): Promise<Digest> {
    if (this.unavailable) return Promise.resolve(hashInline(host));
    return new Promise<Digest>((resolve, reject) => {
      this.paths.push(Buffer.from(host + '\0'));
      this.bytes += size;
      this.waiters.push({ resolve, reject });
      if (this.paths.length >= BATCH_FILES) this.dispatch();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.dispatch();
        });
      }
    });
  }

  private dispatch(): void {
    if (this.paths.length === 0) return;
    const paths = Buffer.concat(this.paths);
    const waiters = this.waiters;
    const inline = waiters.length <= INLINE_FILES && this.bytes <= INLINE_BYTES;
    this.paths = [];
    this.waiters = [];
    this.bytes = 0;
    if (inline) settleInline(paths, waiters);
    else void this.limit(() => this.call(paths, waiters));
  }

  private async call(paths: Buffer, waiters: Waiter[]): Promise<void> {
    const out = Buffer.alloc(32 * waiters.length);
    try {
      const { result, message } = await callNative(this.hashFiles, paths, paths.length, out, out.length);
      if (result === HASH_UNAVAILABLE) {
        this.unavailable = true;
        settleInline(paths, waiters);
      } else if (result !== waiters.length) {
        const failure = new KilnError(message);
        for (const w of waiters) w.reject(failure);
      } else {
        waiters.forEach((w, i) => w.resolve(`sha256:${out.toString('hex', i * 32, i * 32 + 32)}`));
      }
    } catch (err) {
      for (const w of waiters) w.reject(err);
    }
  }
}

function hashInline(host: string): Digest {
  return `sha256:${createHash('sha256').update(readFileSync(host)).digest('hex')}`;
}

function settleInline(paths: Buffer, waiters: Waiter[]): void {
  const names = paths.toString('utf8').split('\0');
  waiters.forEach((w, i) => {
    try {
      w.resolve(hashInline(names[i]!));
    } catch (e) {
      w.reject(e);
    }
  });
}

let hasher: SmallFileHasher | null | undefined;

/** The SHA-256 of a small file: in a native batch where the library is there, else inline. */
export function hashSmallFile(host: string, size: number): Promise<Digest> {
  if (hasher === undefined) {
    const f = nativeFiles()?.hashFiles;
    hasher = f ? new SmallFileHasher(f) : null;
  }
  return hasher ? hasher.hash(host, size) : Promise.resolve(hashInline(host));
}
