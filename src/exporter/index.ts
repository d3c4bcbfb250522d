// Exporters: an image already in the store, written out as buildx's --output asks. The image is
// never rebuilt here; only its layers may be recompressed when the spec asks for another
// compression (which gives a new manifest digest, returned).

import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import type { Digest } from '../graph/ops.js';
import { normalizeReference, parseReference, familiarReference } from '../registry/reference.js';
import { removeTree, type LayerCompression, type Store } from '../store/store.js';
import { hexOf } from '../util/digest.js';
import { KilnError } from '../util/errors.js';
import type { ArchiveFile } from '../util/tar/archive.js';
import { createLayerTar } from '../util/tar/write.js';
import { extractTar } from '../util/tar/extract.js';
import { compressionOfMediaType, ensureLayer, LAYER_JOBS, transcodeBlob } from '../image/layers.js';
import { materializeLayer, readJsonBlob, resolveManifest } from '../image/load.js';
import { MediaType, type Descriptor, type ImageConfigFile, type ImageIndex, type ImageManifest } from '../image/types.js';
import { writeArchiveAtomic, writeDirAtomic, writeStreamAtomic } from './atomic.js';
import type { OutputSpec } from './spec.js';
import { noAnnotations } from './annotations.js';
import { canonicalJson } from '../util/digest.js';

export { parseOutputSpec, type OutputSpec, type OutputType } from './spec.js';
export { writeIidFile, writeMetadataFile, buildMetadata, type BuildResultDigests } from './metadata.js';

export interface ExportOptions {
  signal?: AbortSignal;
  /** Names for the image when the spec has no `name=` (the build's -t tags). */
  names?: string[];
  /** Called with each layer of the image written out as soon as its blob is stored (a push uploads it meanwhile). */
  onLayer?: (layer: Descriptor) => void;
}

export interface ExportResult {
  /** The manifest written out (differs from the input when layers were recompressed). */
  manifestDigest: Digest;
  configDigest: Digest;
  descriptor: Descriptor;
  names: string[];
}

interface ImageDocs {
  manifestDigest: Digest;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  config: ImageConfigFile;
}

export async function exportImage(store: Store, manifestDigest: Digest, spec: OutputSpec, opts: ExportOptions = {}): Promise<ExportResult> {
  const names = (spec.names.length > 0 ? spec.names : (opts.names ?? [])).map((n) => normalizeReference(n, `--output name`));
  let docs = await readImage(store, manifestDigest);
  if (spec.type === 'oci' || spec.type === 'docker' || spec.type === 'image' || spec.type === 'registry') {
    docs = await adaptImage(store, docs, spec, opts.onLayer);
  }
  const descriptor: Descriptor = { mediaType: docs.manifest.mediaType ?? MediaType.ociManifest, digest: docs.manifestDigest, size: docs.manifestBytes.length };
  const result: ExportResult = { manifestDigest: docs.manifestDigest, configDigest: docs.manifest.config.digest as Digest, descriptor, names };
  switch (spec.type) {
    case 'oci':
    case 'docker': {
      const files = layoutFiles(store, docs, descriptor, names, spec);
      if (spec.tar) await writeArchiveAtomic(spec.dest!, files, opts.signal);
      else await writeDirAtomic(spec.dest!, (dir) => writeFiles(dir, files));
      return result;
    }
    case 'local':
      await writeDirAtomic(spec.dest!, (dir) => mergeLayers(store, docs, dir, opts.signal));
      return result;
    case 'tar': {
      const staging = await store.tempDir('export-tar');
      try {
        const merged = join(staging, 'rootfs');
        await mkdir(merged);
        await mergeLayers(store, docs, merged, opts.signal);
        const { stream } = createLayerTar(merged);
        await writeStreamAtomic(spec.dest!, stream, opts.signal);
      } finally {
        await removeTree(staging);
      }
      return result;
    }
    case 'cacheonly':
      return result;
    case 'image':
    case 'registry':
      // Stored under its names here (unless store=false); pushing is the registry client's job (src/registry/push.ts).
      if (spec.store) for (const n of names) await store.setRef(n, docs.manifestDigest);
      return result;
  }
}

async function readImage(store: Store, digest: Digest): Promise<ImageDocs> {
  const { digest: manifestDigest, manifest } = await resolveManifest(store, digest);
  const manifestBytes = await store.readBlob(manifestDigest);
  const config = await readJsonBlob<ImageConfigFile>(store, manifest.config.digest as Digest, 'image config');
  return { manifestDigest, manifest, manifestBytes, config };
}

const DOCKER_TYPES: Record<string, string> = {
  [MediaType.ociLayer]: 'application/vnd.docker.image.rootfs.diff.tar',
  [MediaType.ociLayerGzip]: MediaType.dockerLayerGzip,
  [MediaType.ociLayerZstd]: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
};
const OCI_TYPES: Record<string, string> = Object.fromEntries(Object.entries(DOCKER_TYPES).map(([k, v]) => [v, k]));

/**
 * The image as registries and OCI archives expect it: gzip layers unless told otherwise.
 * `kiln build` stores images with uncompressed layers (as a local image store does), so
 * compression is paid once, by the first push or OCI export, and its blobs are then reused.
 */
export async function distributable(
  store: Store, manifestDigest: Digest, compression: LayerCompression = 'gzip', onLayer?: (layer: Descriptor) => void,
): Promise<Digest> {
  const docs = await readImage(store, manifestDigest);
  const spec: OutputSpec = {
    type: 'registry',
    tar: false,
    compression,
    forceCompression: false,
    names: [],
    push: true,
    store: true,
    pushByDigest: false,
    insecure: false,
    // A Docker v2 image stays one: only its layers' compression changes.
    ociMediaTypes: docs.manifest.mediaType !== MediaType.dockerManifest,
    annotations: noAnnotations(),
    attrs: {},
  };
  return (await adaptImage(store, docs, spec, onLayer)).manifestDigest;
}

/** What a spec without compression= gets: gzip where images travel (OCI archives, registries), else as stored. */
function defaultCompression(spec: OutputSpec): LayerCompression | undefined {
  if (spec.compression) return spec.compression;
  return spec.type === 'oci' || spec.type === 'registry' || (spec.type === 'image' && spec.push) ? 'gzip' : undefined;
}

/** One layer of adaptImage: recompressed when `want` says so, with the media types the spec asks for. */
async function adaptLayer(store: Store, l: Descriptor, diffId: Digest, want: LayerCompression | undefined, spec: OutputSpec): Promise<Descriptor> {
  let next: Descriptor = { mediaType: l.mediaType, digest: l.digest, size: l.size };
  const have = compressionOfMediaType(l.mediaType);
  if (want && (want !== have || (spec.forceCompression && spec.compressionLevel !== undefined))) {
    const snap = await store.snapshotForDiffId(diffId);
    const meta = snap ? await store.getSnapshot(snap) : undefined;
    // The snapshot's tar is remade with the epoch it was first made with, so its diffID holds.
    const rec = snap && meta
      ? (await ensureLayer(store, snap, want, spec.compressionLevel, { sourceDateEpoch: meta.tarEpoch ?? undefined })).descriptor
      : await transcodeBlob(store, { digest: l.digest as Digest, size: l.size }, diffId, want, spec.compressionLevel);
    next = { mediaType: rec.mediaType, digest: rec.digest, size: rec.size };
    if (snap && (await store.getSnapshot(snap))?.diffId !== diffId) {
      throw new KilnError(`layer ${diffId} changed while being recompressed`);
    }
  }
  next.mediaType = spec.ociMediaTypes === false ? (DOCKER_TYPES[next.mediaType] ?? next.mediaType) : (OCI_TYPES[next.mediaType] ?? next.mediaType);
  return next;
}

/** Applies compression= and oci-mediatypes= to the image, writing a new manifest when anything changes. */
async function adaptImage(store: Store, docs: ImageDocs, spec: OutputSpec, onLayer?: (layer: Descriptor) => void): Promise<ImageDocs> {
  const want: LayerCompression | undefined = defaultCompression(spec);
  const docker = spec.ociMediaTypes === false;
  const diffIds = docs.config.rootfs.diff_ids as Digest[];
  // Layers are recompressed side by side, the smallest first: a push uploads each layer as soon
  // as it is stored, so the sooner the first is ready the longer uploads overlap compression.
  const limit = pLimit(LAYER_JOBS);
  const order = docs.manifest.layers.map((l, i) => ({ l, i })).sort((a, b) => a.l.size - b.l.size || a.i - b.i);
  const adapted = new Array<Promise<Descriptor>>(order.length);
  for (const { l, i } of order) {
    adapted[i] = limit(async () => {
      const layer = await adaptLayer(store, l, diffIds[i]!, want, spec);
      onLayer?.(layer);
      return layer;
    });
  }
  // All settle before a failure is reported: none is left writing into the store behind it.
  const settled = await Promise.allSettled(adapted);
  const layers = settled.map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
  let changed = layers.some((n, i) => n.mediaType !== docs.manifest.layers[i]!.mediaType || n.digest !== docs.manifest.layers[i]!.digest);
  const manifestType = docker ? MediaType.dockerManifest : MediaType.ociManifest;
  const configType = docker ? MediaType.dockerConfig : MediaType.ociConfig;
  if (docs.manifest.mediaType !== manifestType || docs.manifest.config.mediaType !== configType) changed = true;
  const added = spec.annotations.manifest;
  let annotations = docs.manifest.annotations;
  // (parseOutputSpec refuses annotations with oci-mediatypes=false.)
  if (Object.keys(added).length > 0) {
    annotations = { ...annotations, ...added };
    if (canonicalJson(annotations) !== canonicalJson(docs.manifest.annotations ?? {})) changed = true;
  }
  if (!changed) return docs;
  if (docker && layers.some((l) => l.mediaType.includes('zstd'))) {
    throw new KilnError('--output: zstd layers need OCI media types (drop oci-mediatypes=false)', { exitCode: 2 });
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: manifestType,
    config: { ...docs.manifest.config, mediaType: configType },
    layers,
    ...(annotations ? { annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const blob = await store.writeBlob(bytes);
  return { manifestDigest: blob.digest, manifest, manifestBytes: bytes, config: docs.config };
}

function blobFile(store: Store, d: Descriptor): ArchiveFile {
  const digest = d.digest as Digest;
  return { name: `blobs/sha256/${hexOf(digest)}`, size: d.size, body: { path: store.blobPath(digest), label: `blob ${digest}` } };
}

/** The files of an OCI image layout; with `docker`, also docker-archive's manifest.json. */
function layoutFiles(store: Store, docs: ImageDocs, descriptor: Descriptor, names: string[], spec: OutputSpec): ArchiveFile[] {
  const docker = spec.type === 'docker';
  const files = new Map<string, ArchiveFile>();
  const add = (f: ArchiveFile) => files.set(f.name, f);
  add({ name: `blobs/sha256/${hexOf(docs.manifestDigest)}`, size: docs.manifestBytes.length, body: docs.manifestBytes });
  add(blobFile(store, docs.manifest.config));
  for (const l of docs.manifest.layers) add(blobFile(store, l));
  const manifests: Descriptor[] = [];
  const extra = spec.annotations.manifestDescriptor;
  if (names.length === 0) manifests.push(Object.keys(extra).length > 0 ? { ...descriptor, annotations: { ...extra } } : descriptor);
  for (const n of names) {
    const ref = parseReference(n);
    const annotations: Record<string, string> = { ...extra, 'io.containerd.image.name': n };
    if (ref.tag) annotations['org.opencontainers.image.ref.name'] = ref.tag;
    manifests.push({ ...descriptor, annotations });
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const put = (name: string, body: Buffer) => add({ name, size: body.length, body });
  put('oci-layout', json({ imageLayoutVersion: '1.0.0' }));
  put('index.json', json(index));
  if (docker) {
    const repoTags = names.map((n) => {
      const ref = parseReference(n);
      return familiarReference({ registry: ref.registry, repository: ref.repository, tag: ref.tag ?? 'latest' });
    });
    put('manifest.json', json([{ Config: `blobs/sha256/${hexOf(docs.manifest.config.digest)}`, RepoTags: repoTags, Layers: docs.manifest.layers.map((l) => `blobs/sha256/${hexOf(l.digest)}`) }]));
    const repositories: Record<string, Record<string, string>> = {};
    for (const t of repoTags) {
      const colon = t.lastIndexOf(':');
      (repositories[t.slice(0, colon)] ??= {})[t.slice(colon + 1)] = hexOf(docs.manifest.config.digest);
    }
    if (repoTags.length > 0) put('repositories', json(repositories));
  }
  return [...files.values()];
}

async function writeFiles(dir: string, files: ArchiveFile[]): Promise<void> {
  for (const f of files) {
    const path = join(dir, ...f.name.split('/'));
    await mkdir(join(path, '..'), { recursive: true });
    if (Buffer.isBuffer(f.body)) await writeFile(path, f.body);
    else await copyBlobFile(f.body, f.size, path);
  }
}

/** A stored blob copied whole (copy_file_range: no bytes through this process), its size checked. */
async function copyBlobFile(body: { path: string; label: string }, size: number, dest: string): Promise<void> {
  const st = await stat(body.path).catch((err: unknown) => {
    throw new KilnError(`${body.label} is not in the store`, { cause: err });
  });
  if (st.size !== size) throw new KilnError(`${body.label} in the store is corrupt (${st.size} bytes, not ${size})`);
  await copyFile(body.path, dest);
}

/** The image's final filesystem in `dir`: layers applied bottom to top, whiteouts carried out. */
async function mergeLayers(store: Store, docs: ImageDocs, dir: string, signal?: AbortSignal): Promise<void> {
  const diffIds = docs.config.rootfs.diff_ids as Digest[];
  for (let i = 0; i < docs.manifest.layers.length; i++) {
    signal?.throwIfAborted();
    const snap = (await store.snapshotForDiffId(diffIds[i]!)) ?? (await materializeLayer(store, diffIds[i]!, docs.manifest.layers[i]!));
    const { stream } = createLayerTar(store.snapshotFs(snap));
    await extractTar(stream, dir, { whiteouts: 'apply', label: `layer ${diffIds[i]}` });
  }
}
