// The content store: blobs, snapshots, cache records and refs under one root folder.
// Every write is staged in tmp/ and renamed into place, so a kill -9 at any moment leaves
// the store valid, and several kiln processes can share one root.

import { closeSync, createWriteStream, fsync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, readFile, rename, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join, dirname, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import ssri from 'ssri';
import type { Digest } from '../graph/ops.js';
import { hexOf, isDigest } from '../util/digest.js';
import { KilnError } from '../util/errors.js';
import { fileStream, makeDirs } from '../util/fs.js';
import { packageRoot } from '../util/package-root.js';
import { offThreadHashingPassThrough, type HashCheckpoint, type StreamHasher } from '../util/tar/hash.js';

export type { StreamHasher } from '../util/tar/hash.js';
import { sweepStaleTemp } from './sweep.js';
import { unmountAllUnder } from './mounts.js';
import { markTopDirectory } from '../util/syscalls.js';
import { HeadedBlobFile, type BlobHead } from './headed-blob-file.js';

const fsyncAsync = promisify(fsync);

export interface SnapshotMeta {
  id: string;
  createdAt: string;
  /** What made it: a RUN, a COPY-like file op, or an extracted image layer. */
  source: 'exec' | 'file' | 'layer';
  /** Uncompressed layer digest, once the layer tar has been made (or known from the image). */
  diffId?: Digest;
  /** Compressed forms of this snapshot's layer already in blobs/, by compression name. */
  blobs?: Partial<Record<LayerCompression, LayerBlobRecord>>;
  /** The SOURCE_DATE_EPOCH the layer tar (and so diffId) was made with; null for none. */
  tarEpoch?: number | null;
  /** The layer writer's format the tar was made with (LAYER_TAR_FORMAT); absent before format 2. */
  tarFormat?: number;
  /** Bytes of the uncompressed layer tar. */
  size?: number;
  /** True when the layer has no entries (a RUN that changed nothing). */
  empty?: boolean;
  /** Hash states saved while the layer tar was hashed, for a later tar that starts alike (util/tar/hash.ts). */
  hashStates?: HashCheckpoint[];
}

export type LayerCompression = 'gzip' | 'zstd' | 'uncompressed';

/** See Store.blobTee. */
export interface BlobTee {
  stream: Transform;
  commit(digest: Digest): Promise<void>;
  discard(): void;
}

export interface LayerBlobRecord {
  digest: Digest;
  size: number;
  mediaType: string;
  /** The compression level asked for; absent for the compressor's default. */
  level?: number;
}

export interface CacheRecord {
  key: Digest;
  /** The op's output snapshot; null when the step changed nothing. */
  snapshot: string | null;
  createdAt: string;
  /** Free-form description of the inputs, for --explain. */
  explain?: unknown;
  /**
   * Set on an alias record (a key made without reading the step's source files): the key of
   * the step's real record, which later steps build their keys on.
   */
  resultKey?: Digest;
}

export interface RefRecord {
  name: string;
  digest: Digest;
  updatedAt: string;
}

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** `cache/` in the checkout when kiln runs from one; KILN_ROOT overrides. */
export function defaultStoreRoot(): string {
  if (process.env.KILN_ROOT) return process.env.KILN_ROOT;
  return join(packageRoot(), 'cache');
}

export function digestToSri(d: Digest): string {
  return `sha256-${Buffer.from(hexOf(d), 'hex').toString('base64')}`;
}

export class Store {
  private constructor(readonly root: string) {}

  static async open(root: string = defaultStoreRoot()): Promise<Store> {
    // Absolute: the sandbox helper resolves overlay and bind paths after changing directory.
    root = resolve(root);
    const s = new Store(root);
    // Synchronously: every command opens its store before anything else can run, and each is a
    // system call or two on a store that exists, where a thread-pool round trip each was ~1.5 ms.
    try {
      for (const d of ['blobs/sha256', 'snapshots', 'cache', 'refs', 'mounts', 'tmp', 'diffids']) makeDirs(join(root, d));
    } catch (err) {
      throw new KilnError(`cannot use ${root} as the store: ${(err as Error).message}`, { cause: err, exitCode: 2 });
    }
    await sweepStaleTemp(join(root, 'tmp'));
    return s;
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  /** A fresh staging folder under tmp/. Its name starts with our pid so a later kiln can sweep it. */
  async tempDir(prefix: string): Promise<string> {
    this.spreadStaging();
    const dir = join(this.root, 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}-${prefix}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** tempDir with one synchronous mkdir: cheaper than a thread-pool round trip on a step's path. */
  tempDirSync(prefix: string): string {
    this.spreadStaging();
    const dir = join(this.root, 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}-${prefix}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  private stagingSpread = false;

  /**
   * Every file a step writes is made below a staging folder in tmp/ (snapshots are renamed
   * out of it). ext4 without a journal, the root filesystem of this machine kind, makes each
   * new inode step over every inode of its block group freed in the last minute or more, one
   * by one: right after a prune or a removed store, a file cost 150-400 µs instead of ~10, and a
   * cold build of 5,000 files took 3.1-4.1 s instead of 1.4 s. Marking tmp/ as a top directory
   * (chattr +T) makes ext4 put each staging folder, and the files made in it, in a little-used
   * block group instead of the parent's. tmp.topdir records which tmp/ (by inode) was marked,
   * so that only the first build in a store, or in a copy of it, pays for the call.
   */
  private spreadStaging(): void {
    if (this.stagingSpread) return;
    this.stagingSpread = true;
    const tmp = join(this.root, 'tmp');
    const marker = join(this.root, 'tmp.topdir');
    try {
      const ino = String(statSync(tmp).ino);
      if (readFileSync(marker, 'utf8') === ino) return;
    } catch {
      // No marker yet.
    }
    try {
      markTopDirectory(tmp);
      writeFileSync(marker, String(statSync(tmp).ino));
    } catch {
      // A placement hint: a store that cannot take it works the same.
    }
  }

  // ------------------------------------------------------------ blobs

  blobPath(d: Digest): string {
    return join(this.root, 'blobs', 'sha256', hexOf(d));
  }

  async hasBlob(d: Digest): Promise<boolean> {
    try {
      await stat(this.blobPath(d));
      return true;
    } catch {
      return false;
    }
  }

  async blobSize(d: Digest): Promise<number> {
    return (await stat(this.blobPath(d))).size;
  }

  /** The whole blob, checked against its digest. */
  async readBlob(d: Digest): Promise<Buffer> {
    let data: Buffer;
    try {
      data = await readFile(this.blobPath(d));
    } catch (err) {
      throw new KilnError(`blob ${d} is not in the store`, { cause: err });
    }
    if (!ssri.checkData(data, digestToSri(d))) throw new KilnError(`blob ${d} in the store is corrupt`);
    return data;
  }

  /**
   * A stream of the blob that errors (KilnError) at the end if its bytes do not match the digest.
   * With `sizeOnly`, only the length is checked: for copies whose reader checks digests itself
   * (an exported archive: docker load, skopeo and registries verify every blob), where hashing
   * would be most of the time. A stored blob's name is its digest, checked when it was written.
   */
  blobStream(d: Digest, opts: { sizeOnly?: number } = {}): Readable {
    const expected = opts.sizeOnly;
    if (expected !== undefined) {
      let seen = 0;
      const count = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          seen += chunk.length;
          cb(null, chunk);
        },
        flush(cb) {
          cb(seen === expected ? null : new KilnError(`blob ${d} in the store is corrupt (${seen} bytes, not ${expected})`));
        },
      });
      count.on('error', () => undefined);
      const raw = fileStream(this.blobPath(d));
      raw.on('error', (err) => count.destroy(new KilnError(`blob ${d} is not in the store`, { cause: err })));
      return raw.pipe(count);
    }
    const hash = createHash('sha256');
    const verify = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const got = `sha256:${hash.digest('hex')}`;
        cb(got === d ? null : new KilnError(`blob ${d} in the store is corrupt (its bytes hash to ${got})`));
      },
    });
    // Consumers see the error through their own listeners; this one keeps a consumer that has
    // already stopped reading (say, a tar writer that failed first) from crashing the process.
    verify.on('error', () => undefined);
    const src = fileStream(this.blobPath(d));
    src.on('error', (err) => verify.destroy(new KilnError(`blob ${d} is not in the store`, { cause: err })));
    return src.pipe(verify);
  }

  async writeBlob(data: Uint8Array | string, expected?: Digest): Promise<BlobInfo> {
    const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const digest = `sha256:${createHash('sha256').update(buf).digest('hex')}` as Digest;
    if (expected && expected !== digest) throw new KilnError(`content does not match digest ${expected} (got ${digest})`);
    if (!(await this.hasBlob(digest))) {
      const tmp = join(this.root, 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}-blob`);
      await writeFile(tmp, buf);
      await rename(tmp, this.blobPath(digest));
    }
    return { digest, size: buf.length };
  }

  /**
   * Streams into tmp/ while hashing (with `counter`, by default on a thread-pool thread when
   * OpenSSL's SHA-256 is reachable); renamed in only when the digest matches `expected` (if given). With `head`, the blob
   * starts with that blob's head and `source` is the rest (see HeadedBlobFile).
   */
  async ingestStream(source: Readable, expected?: Digest, counter: StreamHasher = offThreadHashingPassThrough(), head?: BlobHead): Promise<BlobInfo> {
    const tmp = join(this.root, 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}-ingest`);
    try {
      await pipeline(source, counter.stream, head ? new HeadedBlobFile(tmp, head) : createWriteStream(tmp));
      const digest = await counter.digest();
      if (expected && expected !== digest) {
        throw new KilnError(`content for ${expected} does not match its digest (got ${digest})`);
      }
      await rename(tmp, this.blobPath(digest));
      return { digest, size: counter.size() };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * A pass-through that also writes what flows through it to a file under tmp/, for bytes whose
   * digest the caller computes anyway: `commit(digest)` moves the file into blobs/ under that
   * digest (which must be its content's), `discard()` drops it. Writes are synchronous: they go
   * to the page cache, and a thread-pool round trip per piece would cost more.
   */
  blobTee(): BlobTee {
    const path = join(this.root, 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}-tee`);
    let fd: number | undefined = openSync(path, 'wx');
    const close = () => {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    };
    const stream = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        try {
          for (let off = 0; off < chunk.length; ) off += writeSync(fd!, chunk, off, chunk.length - off);
        } catch (err) {
          cb(err as Error);
          return;
        }
        cb(null, chunk);
      },
      flush(cb) {
        close();
        cb();
      },
    });
    stream.on('close', close);
    return {
      stream,
      commit: async (digest) => {
        close();
        await rename(path, this.blobPath(digest));
      },
      discard: () => {
        close();
        rmSync(path, { force: true });
      },
    };
  }

  /** Moves a file that is already under tmp/ into blobs/, hashing it first. */
  async ingestFile(tmpFile: string, expected?: Digest): Promise<BlobInfo> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of fileStream(tmpFile) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    const digest = `sha256:${hash.digest('hex')}` as Digest;
    if (expected && expected !== digest) {
      await rm(tmpFile, { force: true });
      throw new KilnError(`content for ${expected} does not match its digest (got ${digest})`);
    }
    await rename(tmpFile, this.blobPath(digest));
    return { digest, size };
  }

  async listBlobs(): Promise<Digest[]> {
    const names = await readdir(join(this.root, 'blobs', 'sha256'));
    return names.map((n) => `sha256:${n}` as Digest).filter(isDigest);
  }

  // ------------------------------------------------------------ snapshots

  snapshotDir(id: string): string {
    return join(this.root, 'snapshots', id);
  }

  /** The folder holding the snapshot's files (overlay format: whiteouts are 0/0 char devices). */
  snapshotFs(id: string): string {
    return join(this.root, 'snapshots', id, 'fs');
  }

  async getSnapshot(id: string): Promise<SnapshotMeta | undefined> {
    return this.getSnapshotSync(id);
  }

  /** Read synchronously: a small file, asked for on every step's path (a thread-pool round trip costs more). */
  private getSnapshotSync(id: string): SnapshotMeta | undefined {
    try {
      return JSON.parse(readFileSync(join(this.snapshotDir(id), 'meta.json'), 'utf8')) as SnapshotMeta;
    } catch {
      return undefined;
    }
  }

  /**
   * Makes `stagedFs` (a folder under tmp/) the snapshot `id` by rename. If another process
   * committed the same id first, ours is discarded: identical ids mean identical contents.
   */
  async commitSnapshot(
    id: string,
    stagedFs: string,
    meta: Omit<SnapshotMeta, 'id' | 'createdAt'>,
    /** Files kept next to fs/ and meta.json (by name), committed with them. */
    extras: Record<string, string> = {},
  ): Promise<SnapshotMeta> {
    if (!/^[A-Za-z0-9_.-]+$/.test(id)) throw new Error(`bad snapshot id ${id}`);
    const full: SnapshotMeta = { ...meta, id, createdAt: new Date().toISOString() };
    const staging = await this.tempDir(`snap-${id.slice(0, 12)}`);
    await rename(stagedFs, join(staging, 'fs'));
    await writeFile(join(staging, 'meta.json'), JSON.stringify(full));
    for (const [name, body] of Object.entries(extras)) await writeFile(join(staging, name), body);
    try {
      await rename(staging, this.snapshotDir(id));
      return full;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      await removeTree(staging);
      const existing = await this.getSnapshot(id);
      if (!existing) throw new KilnError(`snapshot ${id} exists without metadata`);
      return existing;
    }
  }

  async updateSnapshotMeta(id: string, patch: Partial<SnapshotMeta>): Promise<SnapshotMeta> {
    const cur = await this.getSnapshot(id);
    if (!cur) throw new Error(`no snapshot ${id}`);
    const next = { ...cur, ...patch, id };
    await this.writeFileAtomic(join(this.snapshotDir(id), 'meta.json'), JSON.stringify(next));
    return next;
  }

  /**
   * Remembers which snapshot's layer tar has this diffID, so an image kiln built (and later
   * reads back by digest) reuses the snapshot instead of extracting its layer again.
   */
  async linkDiffId(diffId: Digest, snapshotId: string): Promise<void> {
    const file = join(this.root, 'diffids', hexOf(diffId));
    // Already so (every build on a pulled image says it again): no write, and no fsync.
    let current: string | undefined;
    try {
      current = readFileSync(file, 'utf8').trim();
    } catch {
      // not linked yet
    }
    if (current === snapshotId) return;
    await this.writeFileAtomic(file, snapshotId);
  }

  /** The snapshot whose layer has this diffID, if it is still in the store. */
  async snapshotForDiffId(diffId: Digest): Promise<string | undefined> {
    const found = this.pointedSnapshot('diffids', diffId);
    return found && found.meta.diffId === diffId ? found.id : undefined;
  }

  /** The snapshot a pointer file (diffids/, lineage/) names, when it is still in the store. */
  private pointedSnapshot(dir: 'diffids' | 'lineage', key: Digest): { id: string; meta: SnapshotMeta } | undefined {
    let id: string;
    try {
      id = readFileSync(join(this.root, dir, hexOf(key)), 'utf8').trim();
    } catch {
      return undefined;
    }
    const meta = this.getSnapshotSync(id);
    return meta && { id, meta };
  }

  /**
   * Remembers the latest snapshot a step of this lineage made (a COPY keyed without its source
   * files' contents), so its next run can start from it. Advisory: losing it costs a full copy.
   */
  async setLineage(lineage: Digest, snapshotId: string): Promise<void> {
    await this.writeFileAtomic(join(this.root, 'lineage', hexOf(lineage)), snapshotId, { durable: false });
  }

  /** The latest snapshot of this lineage, if it is still in the store. */
  async getLineage(lineage: Digest): Promise<string | undefined> {
    return this.pointedSnapshot('lineage', lineage)?.id;
  }

  /** Records that a snapshot was just used (a cache hit, an export): prune removes least recently used first. */
  async markSnapshotUsed(id: string): Promise<void> {
    // Synchronous, as the cache lookups: each hit of a rebuild marks its snapshot, one after the
    // other down a stage, and a thread-pool round trip each was ~0.3 ms per step.
    const p = join(this.snapshotDir(id), 'used');
    const now = new Date();
    try {
      utimesSync(p, now, now);
    } catch {
      try {
        writeFileSync(p, '');
      } catch {
        // gone already: nothing to record
      }
    }
  }

  async listSnapshots(): Promise<string[]> {
    return (await readdir(join(this.root, 'snapshots'))).sort();
  }

  // ------------------------------------------------------------ cache records

  private cachePath(key: Digest): string {
    return join(this.root, 'cache', hexOf(key));
  }

  async getCacheRecord(key: Digest): Promise<CacheRecord | undefined> {
    // Synchronous reads: every step looks its record up (twice when it runs), and a thread-pool
    // round trip per call costs more than these small reads.
    let rec: CacheRecord;
    try {
      rec = JSON.parse(readFileSync(this.cachePath(key), 'utf8')) as CacheRecord;
    } catch {
      return undefined;
    }
    // A record whose snapshot was pruned is a miss, not an error.
    if (rec.snapshot !== null && !this.getSnapshotSync(rec.snapshot)) return undefined;
    return rec;
  }

  async putCacheRecord(rec: CacheRecord): Promise<void> {
    await this.writeFileAtomic(this.cachePath(rec.key), JSON.stringify(rec));
  }

  // ------------------------------------------------------------ refs (the local image list)

  private refPath(name: string): string {
    return join(this.root, 'refs', encodeURIComponent(name));
  }

  async setRef(name: string, digest: Digest): Promise<void> {
    // A rebuild that changed nothing leaves the tag as it was: no write, and no fsync. Its time
    // stays the time the name came to point at this image.
    if ((await this.getRef(name))?.digest === digest) return;
    const rec: RefRecord = { name, digest, updatedAt: new Date().toISOString() };
    await this.writeFileAtomic(this.refPath(name), JSON.stringify(rec));
  }

  async getRef(name: string): Promise<RefRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.refPath(name), 'utf8')) as RefRecord;
    } catch {
      return undefined;
    }
  }

  async deleteRef(name: string): Promise<boolean> {
    try {
      await rm(this.refPath(name));
      return true;
    } catch {
      return false;
    }
  }

  async listRefs(): Promise<RefRecord[]> {
    const out: RefRecord[] = [];
    for (const n of (await readdir(join(this.root, 'refs'))).sort()) {
      const r = await this.getRef(decodeURIComponent(n));
      if (r) out.push(r);
    }
    return out;
  }

  // ------------------------------------------------------------ helpers

  /**
   * Write to tmp/, fsync, rename over the target: readers see the old or the new file, never half.
   * `durable: false` skips the fsync: the rename alone survives kill -9, fsync is for power loss,
   * worth it only for records that matter (cache records, refs). `background`: for writes
   * nothing waits on (--explain's records), every call goes to the thread pool, so a disk that
   * is slow to replace a file never holds up the main thread.
   */
  async writeFileAtomic(target: string, data: string | Uint8Array, opts: { durable?: boolean; background?: boolean } = {}): Promise<void> {
    const tmp = join(this.root, 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}-write`);
    const durable = opts.durable !== false;
    const move = opts.background ? (from: string, to: string) => rename(from, to) : async (from: string, to: string) => renameSync(from, to);
    try {
      if (opts.background) {
        await writeFile(tmp, data, { flush: durable });
      } else {
        // Small records: synchronous calls, except the fsync, which may wait on the disk and
        // so stays off the main thread (one thread-pool round trip instead of six).
        const fd = openSync(tmp, 'w');
        try {
          writeFileSync(fd, data);
          if (durable) await fsyncAsync(fd);
        } finally {
          closeSync(fd);
        }
      }
      try {
        await move(tmp, target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        // The target's folder is missing (only the first record of a folder made on demand).
        mkdirSync(dirname(target), { recursive: true });
        await move(tmp, target);
      }
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }
}

/** Removes a staged tree; refuses to cross into anything mounted below it. */
export async function removeTree(dir: string): Promise<void> {
  const stuck = unmountAllUnder(dir);
  if (stuck.length > 0) throw new Error(`cannot remove ${dir}: still mounted at ${stuck.join(', ')}`);
  await rm(dir, { recursive: true, force: true });
}
