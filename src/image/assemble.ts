// Image assembly: snapshots + config in, config and manifest blobs out. Times are fixed
// (SOURCE_DATE_EPOCH, else the Unix epoch) so that the same inputs give the same manifest
// digest on any machine and in any store.

import type { Digest } from '../graph/ops.js';
import type { LayerCompression, Store } from '../store/store.js';
import { KilnError } from '../util/errors.js';
import { ensureLayers } from './layers.js';
import { imageConfigAsWritten } from './config-fields.js';
import { MediaType, type Descriptor, type HistoryEntry, type ImageConfigFile, type ImageManifest } from './types.js';

export type ImageFlavour = 'oci' | 'docker';

export interface WriteImageOptions {
  /** Snapshot ids, bottom (base image's first layer) to top. Empty layers are left out. */
  layers: string[];
  /** The image config without rootfs, history and created (kiln fills those in). */
  config: Omit<ImageConfigFile, 'rootfs' | 'history' | 'created'>;
  /**
   * The full history, the base image's entries first. Entries without `empty_layer` are matched
   * in order to `layers`; an entry whose layer turns out empty is marked `empty_layer: true`.
   * When omitted, one entry per layer is made.
   */
  history?: HistoryEntry[];
  /** Seconds. Sets `created` of the image and of history entries that have none, and clamps layer mtimes. */
  sourceDateEpoch?: number;
  compression?: LayerCompression;
  compressionLevel?: number;
  /** Media types for manifest and config; 'docker' is for registries that want Docker v2.2. */
  flavour?: ImageFlavour;
  annotations?: Record<string, string>;
  /** Extra top-level fields of the config JSON (the inline build cache). */
  extraConfig?: Record<string, unknown>;
}

export interface WrittenImage {
  manifestDigest: Digest;
  manifestSize: number;
  configDigest: Digest;
  manifest: ImageManifest;
  config: ImageConfigFile;
}

export function createdTime(sourceDateEpoch?: number): string {
  return new Date((sourceDateEpoch ?? 0) * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

const DOCKER_LAYER_TYPES: Record<string, string> = {
  [MediaType.ociLayer]: 'application/vnd.docker.image.rootfs.diff.tar',
  [MediaType.ociLayerGzip]: MediaType.dockerLayerGzip,
  [MediaType.ociLayerZstd]: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
};

export async function writeImage(store: Store, opts: WriteImageOptions): Promise<WrittenImage> {
  const compression = opts.compression ?? 'gzip';
  const created = createdTime(opts.sourceDateEpoch);
  const results = await ensureLayers(store, opts.layers, compression, opts.compressionLevel, { sourceDateEpoch: opts.sourceDateEpoch });

  const history: HistoryEntry[] = [];
  const inputHistory: HistoryEntry[] = opts.history ?? opts.layers.map(() => ({}));
  const layerEntries = inputHistory.filter((h) => !h.empty_layer).length;
  if (layerEntries !== opts.layers.length) {
    throw new KilnError(`image history has ${layerEntries} layer entries but the image has ${opts.layers.length} layers`);
  }
  let next = 0;
  for (const h of inputHistory) {
    const entry: HistoryEntry = { created: h.created ?? created };
    if (h.created_by !== undefined) entry.created_by = h.created_by;
    if (h.author !== undefined) entry.author = h.author;
    if (h.comment !== undefined) entry.comment = h.comment;
    if (h.empty_layer || results[next++]!.empty) entry.empty_layer = true;
    history.push(entry);
  }

  const kept = results.filter((r) => !r.empty);
  const config: ImageConfigFile = {
    created,
    ...(opts.config.author !== undefined ? { author: opts.config.author } : {}),
    architecture: opts.config.architecture,
    os: opts.config.os,
    ...(opts.config.variant !== undefined ? { variant: opts.config.variant } : {}),
    config: imageConfigAsWritten(opts.config.config),
    rootfs: { type: 'layers', diff_ids: kept.map((r) => r.diffId) },
    history,
    ...opts.extraConfig,
  };
  const docker = opts.flavour === 'docker';
  const configBlob = await store.writeBlob(JSON.stringify(config));
  const layers: Descriptor[] = kept.map((r) => ({
    mediaType: docker ? (DOCKER_LAYER_TYPES[r.descriptor.mediaType] ?? r.descriptor.mediaType) : r.descriptor.mediaType,
    digest: r.descriptor.digest,
    size: r.descriptor.size,
  }));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: docker ? MediaType.dockerManifest : MediaType.ociManifest,
    config: { mediaType: docker ? MediaType.dockerConfig : MediaType.ociConfig, digest: configBlob.digest, size: configBlob.size },
    layers,
    ...(opts.annotations && Object.keys(opts.annotations).length > 0 ? { annotations: opts.annotations } : {}),
  };
  const manifestBlob = await store.writeBlob(JSON.stringify(manifest));
  return { manifestDigest: manifestBlob.digest, manifestSize: manifestBlob.size, configDigest: configBlob.digest, manifest, config };
}
