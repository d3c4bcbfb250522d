// Layer blobs for snapshots. A snapshot's layer tar and each compressed form are made once and
// recorded in the snapshot's meta, so later exports (and other builds) reuse the same blob and
// so the same digest. A snapshot that came from an image layer keeps that layer's diffID: other
// compressions are made by transcoding its blob, never by re-archiving the extracted folder.

import { availableParallelism } from 'node:os';
import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import type { Digest } from '../graph/ops.js';
import type { LayerCompression, SnapshotMeta, Store, LayerBlobRecord, StreamHasher } from '../store/store.js';
import { KilnError } from '../util/errors.js';
import { createLayerTar, LAYER_TAR_FORMAT } from '../util/tar/write.js';
import { previousLayerOf, type PreviousLayer } from './previous-layer.js';
import type { BlobHead } from '../store/headed-blob-file.js';
import { compressor, openDecompressed } from '../util/tar/filter.js';
import { hashingPassThrough, layerHasher, offThreadHashingPassThrough } from '../util/tar/hash.js';
import { resumableSha256Available } from '../util/sha256-resumable.js';
import { MediaType, type Descriptor } from './types.js';

export interface LayerOptions {
  /** Clamp file mtimes in the tar to this (seconds). Part of what the diffID depends on. */
  sourceDateEpoch?: number;
}

export interface LayerResult {
  /** sha256 of the uncompressed tar (what the image config lists in rootfs.diff_ids). */
  diffId: Digest;
  /** The compressed blob, already in the store. */
  descriptor: Descriptor;
  /** The layer has no entries: images leave it out (its history entry gets empty_layer). */
  empty: boolean;
}

export function layerMediaType(compression: LayerCompression): string {
  switch (compression) {
    case 'gzip':
      return MediaType.ociLayerGzip;
    case 'zstd':
      return MediaType.ociLayerZstd;
    case 'uncompressed':
      return MediaType.ociLayer;
  }
}

/** The compression a layer media type implies (OCI and Docker spellings). */
export function compressionOfMediaType(mediaType: string): LayerCompression | undefined {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip')) return 'gzip';
  if (mediaType.endsWith('+zstd') || mediaType.endsWith('.tar.zstd')) return 'zstd';
  if (mediaType.endsWith('.tar') || mediaType === 'application/vnd.docker.image.rootfs.diff.tar') return 'uncompressed';
  return undefined;
}

// Layers being made in this process: a layer started early (see cli/build.ts) is awaited by
// the image write, not made twice.
const inFlight = new Map<string, Promise<LayerResult>>();

export function ensureLayer(
  store: Store,
  snapshotId: string,
  compression: LayerCompression = 'gzip',
  level?: number,
  opts: LayerOptions = {},
): Promise<LayerResult> {
  const key = [store.root, snapshotId, compression, level ?? '', opts.sourceDateEpoch ?? ''].join('\0');
  let made = inFlight.get(key);
  if (!made) {
    made = makeLayer(store, snapshotId, compression, level, opts);
    inFlight.set(key, made);
    const forget = () => void inFlight.delete(key);
    made.then(forget, forget);
  }
  return made;
}

async function makeLayer(
  store: Store,
  snapshotId: string,
  compression: LayerCompression,
  level: number | undefined,
  opts: LayerOptions,
): Promise<LayerResult> {
  const meta = await store.getSnapshot(snapshotId);
  if (!meta) throw new KilnError(`snapshot ${snapshotId} is not in the store`);
  await store.markSnapshotUsed(snapshotId);
  const fromImage = meta.source === 'layer';
  const tarEpoch = opts.sourceDateEpoch ?? null;
  const diffIdValid = meta.diffId !== undefined && (fromImage || (meta.tarEpoch ?? null) === tarEpoch);

  if (diffIdValid) {
    const known = meta.blobs?.[compression];
    if (known && (known.level ?? null) === (level ?? null) && (await store.hasBlob(known.digest))) {
      return result(meta.diffId!, known, meta.empty ?? false);
    }
    if (compression === 'uncompressed' && (await store.hasBlob(meta.diffId!))) {
      const rec: LayerBlobRecord = { digest: meta.diffId!, size: await store.blobSize(meta.diffId!), mediaType: MediaType.ociLayer };
      await recordBlob(store, meta, compression, rec, {});
      return result(meta.diffId!, rec, meta.empty ?? false);
    }
    const source = await anyStoredBlob(store, meta);
    if (source) {
      const rec = await transcodeBlob(store, source, meta.diffId!, compression, level);
      await recordBlob(store, meta, compression, rec, {});
      return result(meta.diffId!, rec, meta.empty ?? false);
    }
  }
  if (fromImage) throw new KilnError(`the blob of image layer ${meta.diffId ?? snapshotId} is no longer in the store`);

  // Archive the folder: one pass hashes the tar (diffID) and compresses it into a blob.
  // A COPY that ran again takes its unchanged files' entries from its previous layer; stored
  // uncompressed, the head the two tars share is not even written (image/previous-layer.ts).
  const fromCopy = meta.source === 'file';
  const previous = fromCopy ? await previousLayerOf(store, snapshotId, tarEpoch) : undefined;
  try {
    return await archive(store, snapshotId, meta, compression, level, opts, previous);
  } finally {
    previous?.close();
  }
}

async function archive(
  store: Store,
  snapshotId: string,
  meta: SnapshotMeta,
  compression: LayerCompression,
  level: number | undefined,
  opts: LayerOptions,
  previous: PreviousLayer | undefined,
): Promise<LayerResult> {
  const tarEpoch = opts.sourceDateEpoch ?? null;
  // Uncompressed, the blob is the tar: the store's own hash is the diffID (one pass, not two),
  // made off the event loop with states saved, and resumed from the previous tar of a COPY.
  const uncompressed = compression === 'uncompressed';
  const resumable = uncompressed && resumableSha256Available();
  const omitShared = resumable && previous !== undefined;
  const { stream, stats, shared } = createLayerTar(store.snapshotFs(snapshotId), { sourceDateEpoch: opts.sourceDateEpoch, previous, omitShared });
  const hasher = uncompressed ? layerHasher(previous, omitShared ? shared : undefined) : undefined;
  const tarHash = uncompressed ? undefined : hashingPassThrough();
  const head = omitShared ? { path: previous!.path, bytes: shared } : undefined;
  const blob = await ingestThrough(store, tarHash ? stream.pipe(tarHash.stream) : stream, compression, level, stream, hasher, head);
  const { entries } = await stats;
  const diffId = tarHash ? tarHash.digest() : blob.digest;
  const tarSize = tarHash ? tarHash.size() : blob.size;
  // Only a COPY's layer is ever made again from a previous one (its copy manifest says which).
  const hashStates = hasher && meta.source === 'file' ? await hasher.checkpoints() : [];
  const rec: LayerBlobRecord = { digest: blob.digest, size: blob.size, mediaType: layerMediaType(compression), ...(level !== undefined ? { level } : {}) };
  // A different epoch or new contents invalidate every compressed form recorded before.
  const blobs = meta.diffId === diffId ? { ...meta.blobs } : {};
  blobs[compression] = rec;
  await store.updateSnapshotMeta(snapshotId, {
    diffId, size: tarSize, empty: entries === 0, tarEpoch, tarFormat: LAYER_TAR_FORMAT, blobs,
    hashStates: hashStates.length > 0 ? hashStates : meta.diffId === diffId ? meta.hashStates : undefined,
  });
  if (entries > 0) await store.linkDiffId(diffId, snapshotId);
  return result(diffId, rec, entries === 0);
}

/** How many layers are archived or recompressed at once: compression is most of it, a CPU each. */
export const LAYER_JOBS = Math.max(1, Math.min(4, availableParallelism()));

/** Several layers at once, compressed in parallel; results in input order. */
export async function ensureLayers(
  store: Store,
  snapshotIds: string[],
  compression: LayerCompression = 'gzip',
  level?: number,
  opts: LayerOptions = {},
): Promise<LayerResult[]> {
  const limit = pLimit(LAYER_JOBS);
  // A snapshot listed twice is archived once.
  const byId = new Map<string, Promise<LayerResult>>();
  for (const id of snapshotIds) if (!byId.has(id)) byId.set(id, limit(() => ensureLayer(store, id, compression, level, opts)));
  return Promise.all(snapshotIds.map((id) => byId.get(id)!));
}

function result(diffId: Digest, rec: LayerBlobRecord, empty: boolean): LayerResult {
  return { diffId, empty, descriptor: { mediaType: rec.mediaType, digest: rec.digest, size: rec.size } };
}

async function anyStoredBlob(store: Store, meta: SnapshotMeta): Promise<LayerBlobRecord | undefined> {
  for (const c of ['uncompressed', 'gzip', 'zstd'] as const) {
    const rec = meta.blobs?.[c];
    if (rec && (await store.hasBlob(rec.digest))) return rec;
  }
  if (meta.diffId && (await store.hasBlob(meta.diffId))) {
    return { digest: meta.diffId, size: await store.blobSize(meta.diffId), mediaType: MediaType.ociLayer };
  }
  return undefined;
}

async function ingestThrough(
  store: Store,
  tarStream: Readable,
  compression: LayerCompression,
  level: number | undefined,
  origin: Readable,
  hasher?: StreamHasher,
  head?: BlobHead,
) {
  origin.on('error', (err) => tarStream.destroy(err));
  if (compression === 'uncompressed') return store.ingestStream(tarStream, undefined, hasher, head);
  const z = compressor(compression, level);
  tarStream.on('error', (err) => z.destroy(err));
  return store.ingestStream(tarStream.pipe(z));
}

/**
 * A layer blob in another compression, made from the stored blob `source` (whose uncompressed
 * form must hash to `diffId`). Prefer ensureLayer when the layer has a snapshot: it remembers.
 */
export async function transcodeBlob(
  store: Store, source: { digest: Digest; size: number }, diffId: Digest, compression: LayerCompression, level?: number,
): Promise<LayerBlobRecord> {
  // Only the blob's length is checked on the way in: the diffID check covers its bytes (a
  // corrupt blob cannot decompress to it), and is hashed off the event loop.
  const raw = await openDecompressed(store.blobStream(source.digest, { sizeOnly: source.size }));
  const check = offThreadHashingPassThrough();
  raw.on('error', (err) => check.stream.destroy(err));
  const blob = await ingestThrough(store, raw.pipe(check.stream), compression, level, raw).catch((err: unknown) => {
    if (err instanceof KilnError) throw err;
    throw new KilnError(`blob ${source.digest} in the store is corrupt (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  });
  const got = await check.digest();
  if (got !== diffId) {
    throw new KilnError(`layer blob ${source.digest} does not decompress to diffID ${diffId} (got ${got})`);
  }
  return { digest: blob.digest, size: blob.size, mediaType: layerMediaType(compression), ...(level !== undefined ? { level } : {}) };
}

async function recordBlob(store: Store, meta: SnapshotMeta, compression: LayerCompression, rec: LayerBlobRecord, extra: Partial<SnapshotMeta>): Promise<void> {
  const fresh = (await store.getSnapshot(meta.id)) ?? meta;
  await store.updateSnapshotMeta(meta.id, { ...extra, blobs: { ...fresh.blobs, [compression]: rec } });
}
