// Hashing a layer tar on its way into the store: its diffID and size.

import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import type { Digest } from '../../graph/ops.js';
import { ResumableSha256, resumableSha256Available } from '../sha256-resumable.js';
import { readFullAt } from '../fs.js';

/** A pass-through that hashes and counts a blob or tar on its way (into the store, or an extractor). */
export interface StreamHasher {
  stream: Transform;
  digest(): Digest | Promise<Digest>;
  size(): number;
}

/** A pass-through that hashes and counts what flows through it (a layer's diffID and size). */
export function hashingPassThrough(): { stream: Transform; digest(): Digest; size(): number } {
  const hash = createHash('sha256');
  let size = 0;
  let digest: Digest | undefined;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return {
    stream,
    digest: () => (digest ??= `sha256:${hash.digest('hex')}`),
    size: () => size,
  };
}

/**
 * hashingPassThrough's work done on a thread-pool thread when OpenSSL's SHA-256 is reachable, so
 * that hashing a blob being pulled, or a layer being unpacked, overlaps the main thread's work
 * (unpacking a 170 MB Debian layer spent 0.55 s hashing on the event loop).
 */
export function offThreadHashingPassThrough(): StreamHasher {
  return layerHasher() ?? hashingPassThrough();
}

// The diffID of a layer tar, hashed off the event loop, with the hash's state saved every
// CHECKPOINT_BYTES. When a COPY runs again after a change (its previous snapshot known through
// the copy manifest), the writer leaves out the head its tar shares with the previous one
// (image/previous-layer.ts), and what comes after is still compared with the previous tar up to
// its first differing byte. The hash resumes from the last state saved before the end of what
// the two share, instead of hashing the shared bytes again: a 1 GB layer whose first 800 MB did
// not change hashes ~200 MB.
//
// The previous tar is trusted to hold the bytes it was hashed from, as the store trusts its
// blobs (its size is checked; `kiln store verify` checks its bytes and the saved states).

/** Bytes of tar handed on ahead of the hash at most. */
const MAX_QUEUED = 8 << 20;

/** How far apart saved states are: the most a resumed hash re-reads of the shared bytes. */
export const CHECKPOINT_BYTES = 32 << 20;

/** The hash state after the tar's first `offset` bytes (base64 of OpenSSL's SHA256_CTX). */
export interface HashCheckpoint {
  offset: number;
  state: string;
}

/** A tar made before by the same COPY: its blob, its digest and the states saved hashing it. */
export interface PreviousTar {
  path: string;
  size: number;
  digest: Digest;
  checkpoints: HashCheckpoint[];
}

export interface LayerHasher {
  /** Pass the tar through this on its way to the blob file. */
  stream: Transform;
  digest(): Promise<Digest>;
  size(): number;
  /** States to resume from next time (empty for a tar under CHECKPOINT_BYTES). */
  checkpoints(): Promise<HashCheckpoint[]>;
  /** Bytes this pass actually hashed: the tar's size less what a saved state covered. */
  hashed(): number;
}

/**
 * undefined when OpenSSL's SHA-256 is not reachable: the caller hashes the ordinary way. With
 * `shared`, the tar coming through starts after its first `shared()` bytes, which are
 * `previous`'s (the writer left them out: createLayerTar's omitShared).
 */
export function layerHasher(previous?: PreviousTar, shared?: () => number): LayerHasher | undefined {
  if (!resumableSha256Available()) return undefined;
  return new ResumingHasher(previous, shared).api();
}

class ResumingHasher {
  private offset = 0;
  private hashedBytes = 0;
  private hash: ResumableSha256 | undefined;
  private nextCheckpoint = CHECKPOINT_BYTES;
  private readonly saved: Promise<HashCheckpoint>[] = [];
  /** Open while the tar still matches the previous one byte for byte. */
  private prevFd: number | undefined;
  private scratch = Buffer.alloc(0);
  /** Set when the tar ended as the previous one did, all bytes equal. */
  private same = false;

  constructor(
    private readonly previous: PreviousTar | undefined,
    private shared: (() => number) | undefined,
  ) {
    if (previous) {
      try {
        this.prevFd = openSync(previous.path, 'r');
      } catch {
        this.prevFd = undefined;
      }
    }
    if (this.prevFd === undefined) this.hash = ResumableSha256.start();
  }

  api(): LayerHasher {
    const stream = new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) => {
        try {
          this.take(chunk);
        } catch (err) {
          cb(err as Error);
          return;
        }
        // The tar is made faster than it hashes: hold it back rather than queue it all in memory.
        const queued = this.hash?.queuedAtMost(MAX_QUEUED);
        if (queued) queued.then(() => cb(null, chunk), cb);
        else cb(null, chunk);
      },
      flush: (cb: TransformCallback) => {
        try {
          this.end();
          cb();
        } catch (err) {
          cb(err as Error);
        }
      },
    });
    stream.on('close', () => this.closePrevious());
    return {
      stream,
      digest: async () => (this.same ? this.previous!.digest : this.started().digest()),
      size: () => this.offset,
      checkpoints: async () => (this.same ? this.previous!.checkpoints : Promise.all(this.saved)),
      hashed: () => this.hashedBytes,
    };
  }

  private started(): ResumableSha256 {
    if (!this.hash) throw new Error('layer hash not started');
    return this.hash;
  }

  /** The head the writer left out counts as matched: the tar goes on from its end. */
  private skipShared(): void {
    if (!this.shared) return;
    const bytes = this.shared();
    this.shared = undefined;
    if (bytes === 0) return;
    if (this.prevFd === undefined || bytes > this.previous!.size) throw new Error(`the previous layer tar ${this.previous?.path ?? ''} cannot be read`);
    this.offset = bytes;
  }

  private take(chunk: Buffer): void {
    this.skipShared();
    let rest = chunk;
    if (this.prevFd !== undefined) {
      const m = this.matching(chunk);
      if (m === chunk.length) {
        this.offset += chunk.length;
        return;
      }
      this.diverge(this.offset + m);
      rest = chunk.subarray(m);
      this.offset += m;
    }
    this.feed(rest);
    this.offset += rest.length;
  }

  private end(): void {
    this.skipShared();
    if (this.prevFd === undefined) return;
    if (this.offset === this.previous!.size) {
      this.same = true;
      this.closePrevious();
      return;
    }
    this.diverge(this.offset); // a tar that is a strict prefix of the previous one
  }

  /** How many of `chunk`'s bytes equal the previous tar's at the same offset. */
  private matching(chunk: Buffer): number {
    const n = Math.max(0, Math.min(chunk.length, this.previous!.size - this.offset));
    if (n === 0) return 0;
    if (this.scratch.length < n) this.scratch = Buffer.allocUnsafe(n);
    const got = readFullAt(this.prevFd!, this.scratch, this.offset, n);
    const limit = Math.min(n, got);
    if (chunk.subarray(0, limit).equals(this.scratch.subarray(0, limit))) return limit;
    let i = 0;
    while (i < limit && chunk[i] === this.scratch[i]) i++;
    return i;
  }

  /**
   * The tar differs from the previous one from byte `at` on: take up the hash from the last
   * state saved at or before it, and hash the shared bytes after that state from the old tar.
   */
  private diverge(at: number): void {
    const prev = this.previous!;
    let from: HashCheckpoint | undefined;
    for (const c of prev.checkpoints) if (c.offset <= at && (!from || c.offset > from.offset)) from = c;
    const resumed = from && ResumableSha256.resume(Buffer.from(from.state, 'base64'), from.offset);
    if (from && resumed) {
      this.hash = resumed;
      for (const c of prev.checkpoints) if (c.offset <= from.offset) this.saved.push(Promise.resolve(c));
    } else {
      this.hash = ResumableSha256.start();
    }
    const start = this.started().bytes;
    this.nextCheckpoint = (Math.floor(start / CHECKPOINT_BYTES) + 1) * CHECKPOINT_BYTES;
    for (let pos = start; pos < at; ) {
      const buf = Buffer.allocUnsafe(Math.min(1 << 20, at - pos));
      const n = readFullAt(this.prevFd!, buf, pos);
      if (n < buf.length) throw new Error(`previous layer tar ${prev.path} is shorter than recorded`);
      this.feed(buf);
      pos += n;
    }
    this.closePrevious();
  }

  /** Hashes `data`, saving the state at every CHECKPOINT_BYTES boundary it crosses. */
  private feed(data: Buffer): void {
    const hash = this.started();
    this.hashedBytes += data.length;
    let rest = data;
    while (rest.length > 0) {
      const room = this.nextCheckpoint - hash.bytes;
      if (rest.length < room) {
        hash.update(rest);
        return;
      }
      hash.update(rest.subarray(0, room));
      const offset = this.nextCheckpoint;
      const saved = hash.saveState().then((state) => ({ offset, state: state.toString('base64') }));
      saved.catch(() => undefined); // a failed hash is reported by digest(); these may never be asked for
      this.saved.push(saved);
      this.nextCheckpoint += CHECKPOINT_BYTES;
      rest = rest.subarray(room);
    }
  }

  private closePrevious(): void {
    if (this.prevFd === undefined) return;
    closeSync(this.prevFd);
    this.prevFd = undefined;
  }
}

