// A COPY's plain files copied in batches by native/files/copyfiles.c (through koffi): one call
// per batch on a thread-pool thread, two batches at a time, while the event loop goes on
// walking the sources. Copying inline cost ~70 µs of event-loop time per small file
// here (open, copy, close, chown, chmod, utimes, each a call from JavaScript); a context of
// 20,000 files spent most of its COPY there, on one CPU.
//
// A destination is "pending" from `add` until its batch is done: the diff writer settles the
// batches before it looks at, replaces or links to a pending path, after each action, and
// before it sets directory times.

import pLimit from 'p-limit';
import { KilnError } from '../../util/errors.js';
import { callNative, nativeFiles } from '../../util/native-files.js';
import type { NativeFunction } from '../../util/koffi.js';

export interface BatchedMeta {
  uid: number;
  gid: number;
  mode: number;
}

/** A batch is handed over at this many files or bytes of content, whichever comes first. */
const BATCH_FILES = 256;
const BATCH_BYTES = 64 << 20;
/** Batches copying at once: one per CPU on the machines kiln is measured on. */
const IN_FLIGHT = 2;

export class CopyBatch {
  private jobs: Buffer[] = [];
  private dests: string[] = [];
  private bytes = 0;
  private readonly pending = new Set<string>();
  private readonly limit = pLimit(IN_FLIGHT);
  private readonly running = new Set<Promise<void>>();
  private failure: Error | undefined;
  private abandoned = false;

  private constructor(
    private readonly copy: NativeFunction,
    private readonly mtime: number,
  ) {}

  /** undefined when batches cannot be copied here. */
  static open(mtime: number): CopyBatch | undefined {
    const copy = nativeFiles()?.copyFiles;
    return copy ? new CopyBatch(copy, mtime) : undefined;
  }

  /** `dest` (a host path) is waiting for its batch. */
  has(dest: string): boolean {
    return this.pending.has(dest);
  }

  /** Copies `source` to `dest`, which must not exist, with this owner and mode and the batch's mtime. */
  add(source: string, dest: string, size: number, meta: BatchedMeta): void {
    const src = Buffer.byteLength(source);
    const dst = Buffer.byteLength(dest);
    const job = Buffer.allocUnsafe(20 + src + 1 + dst + 1);
    job.writeUInt32LE(meta.uid, 0);
    job.writeUInt32LE(meta.gid, 4);
    job.writeUInt32LE(meta.mode & 0o7777, 8);
    job.writeBigInt64LE(BigInt(this.mtime), 12);
    job.write(source, 20, 'utf8');
    job[20 + src] = 0;
    job.write(dest, 21 + src, 'utf8');
    job[21 + src + dst] = 0;
    this.jobs.push(job);
    this.dests.push(dest);
    this.pending.add(dest);
    this.bytes += Number.isFinite(size) ? size : 0;
    if (this.jobs.length >= BATCH_FILES || this.bytes >= BATCH_BYTES) this.dispatch();
  }

  /** Every file added so far is copied; the first failure, if any, is thrown. */
  async settle(): Promise<void> {
    this.dispatch();
    while (this.running.size > 0) await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }

  /** Waits for batches under way and forgets the rest (the stage is being thrown away). */
  async abandon(): Promise<void> {
    this.abandoned = true;
    for (const d of this.dests) this.pending.delete(d);
    this.jobs = [];
    this.dests = [];
    while (this.running.size > 0) await Promise.all(this.running);
  }

  private dispatch(): void {
    if (this.jobs.length === 0) return;
    const jobs = Buffer.concat(this.jobs);
    const dests = this.dests;
    this.jobs = [];
    this.dests = [];
    this.bytes = 0;
    const run = this.limit(() => (this.abandoned ? Promise.resolve() : this.call(jobs)))
      .catch((err: unknown) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => {
        for (const d of dests) this.pending.delete(d);
        this.running.delete(run);
      });
    this.running.add(run);
  }

  private async call(jobs: Buffer): Promise<void> {
    const { result, message } = await callNative(this.copy, jobs, jobs.length);
    if (result !== 0) throw new KilnError(`COPY: ${message}`);
  }
}
