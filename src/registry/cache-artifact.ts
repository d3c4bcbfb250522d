// The build cache as an OCI artifact, so any registry (or an OCI layout folder) can carry it
// between machines. One image manifest: its layers are the steps' layer blobs (so registries
// keep them, and pushes reuse the image's own blobs by HEAD or mount), its config is a small
// JSON mapping each cache key to its layer. Importing reads only manifest + config; a layer is
// fetched when the build needs it.
//
//   manifest  artifactType  application/vnd.kiln.build-cache.v1
//             config        application/vnd.kiln.build-cache.config.v1+json
//             layers        every distinct step layer (gzip/zstd/tar blobs, as stored)
//   config    { version: 1, diffIds: [per layer], records: [{ key, layer: index | null }],
//               mounts: [{ id, layer: index }] }   (mounts: RUN --mount=type=cache contents)

import { copyFile, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../graph/ops.js';
import type { Store } from '../store/store.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../image/types.js';
import { isDigest } from '../util/digest.js';
import { KilnError, errorMessage } from '../util/errors.js';
import { clientFor } from './client.js';
import { parseReference, formatReference, referenceTarget } from './reference.js';
import { pushImage, type PushOptions, type PushResult } from './push.js';
import { recordBlobSource } from './blob-sources.js';
import type { PullOptions } from './pull.js';
import { fileStream, makeDirs, pathExists } from '../util/fs.js';

export const CACHE_ARTIFACT_TYPE = 'application/vnd.kiln.build-cache.v1';
export const CACHE_CONFIG_TYPE = 'application/vnd.kiln.build-cache.config.v1+json';

/** A step layer as the cache carries it: the stored blob plus the uncompressed digest. */
export interface CacheLayer {
  digest: Digest;
  size: number;
  mediaType: string;
  diffId: Digest;
}

export interface CacheRecordOut {
  key: Digest;
  /** The step's own layer; null when the step changed nothing. */
  layer: CacheLayer | null;
}

export interface CacheMountOut {
  /** The RUN --mount=type=cache id. */
  id: string;
  layer: CacheLayer;
}

export interface CacheContents {
  records: CacheRecordOut[];
  mounts?: CacheMountOut[];
  /** Keys a step can be found by without reading its source files (COPY --from), to its record's key. */
  aliases?: { key: Digest; resultKey: Digest }[];
}

interface CacheConfig {
  version: 1;
  diffIds: Digest[];
  records: { key: Digest; layer: number | null }[];
  mounts?: { id: string; layer: number }[];
  aliases?: { key: Digest; resultKey: Digest }[];
}

/** An imported cache: what it knows, and a way to bring one layer blob into the store. */
export interface CacheSource {
  /** Where it came from, for messages: a reference or a folder. */
  origin: string;
  /** Digest of the cache manifest. */
  digest: Digest;
  records: Map<Digest, CacheLayer | null>;
  mounts: CacheMountOut[];
  aliases: Map<Digest, Digest>;
  /** Puts the layer's blob in the store, verified (nothing when it is already there). */
  fetchLayer(layer: CacheLayer): Promise<void>;
}

/** Writes the cache manifest + config blobs into the store; the layer blobs must be there already. */
export async function writeCacheArtifact(store: Store, contents: CacheContents): Promise<Digest> {
  const layers: CacheLayer[] = [];
  const indexOf = new Map<string, number>();
  const add = (l: CacheLayer): number => {
    let i = indexOf.get(l.digest);
    if (i === undefined) {
      i = layers.length;
      layers.push(l);
      indexOf.set(l.digest, i);
    }
    return i;
  };
  // Sorted, so the same cache gives the same artifact digest.
  const records = [...contents.records].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const mounts = [...(contents.mounts ?? [])].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const cfg: CacheConfig = {
    version: 1,
    diffIds: [],
    records: records.map((r) => ({ key: r.key, layer: r.layer ? add(r.layer) : null })),
  };
  if (mounts.length) cfg.mounts = mounts.map((m) => ({ id: m.id, layer: add(m.layer) }));
  const aliases = [...(contents.aliases ?? [])].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (aliases.length) cfg.aliases = aliases;
  cfg.diffIds = layers.map((l) => l.diffId);
  for (const l of layers) {
    if (!(await store.hasBlob(l.digest))) throw new KilnError(`cache export: layer blob ${l.digest} is not in the store`);
  }
  const config = await store.writeBlob(JSON.stringify(cfg));
  const manifest: ImageManifest & { artifactType: string } = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: CACHE_ARTIFACT_TYPE,
    config: { mediaType: CACHE_CONFIG_TYPE, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  return (await store.writeBlob(JSON.stringify(manifest))).digest;
}

/** `--cache-to type=registry,ref=REF`: the artifact pushed to REF (blobs the registry has are skipped). */
export async function pushCache(store: Store, contents: CacheContents, ref: string, opts: PushOptions = {}): Promise<PushResult> {
  const digest = await writeCacheArtifact(store, contents);
  return pushImage(store, digest, ref, opts);
}

type ParsedCache = Pick<CacheSource, 'records' | 'mounts' | 'aliases'>;

function parseCacheConfig(bytes: Buffer, manifest: ImageManifest, origin: string): ParsedCache {
  let cfg: CacheConfig;
  try {
    cfg = JSON.parse(bytes.toString('utf8')) as CacheConfig;
  } catch {
    throw new KilnError(`cache ${origin}: the cache config is not JSON`);
  }
  if (cfg.version !== 1) throw new KilnError(`cache ${origin}: cache format version ${String(cfg.version)} is not supported`);
  const layerAt = (i: number): CacheLayer => {
    const d = manifest.layers[i];
    const diffId = cfg.diffIds[i];
    if (!d || !diffId || !isDigest(d.digest) || !isDigest(diffId)) throw new KilnError(`cache ${origin}: layer ${i} is missing or malformed`);
    return { digest: d.digest, size: d.size, mediaType: d.mediaType, diffId };
  };
  const records = new Map<Digest, CacheLayer | null>();
  for (const r of cfg.records) records.set(r.key, r.layer === null ? null : layerAt(r.layer));
  const mounts = (cfg.mounts ?? []).map((m) => ({ id: m.id, layer: layerAt(m.layer) }));
  const aliases = new Map<Digest, Digest>();
  for (const a of cfg.aliases ?? []) if (isDigest(a.key) && isDigest(a.resultKey)) aliases.set(a.key, a.resultKey);
  return { records, mounts, aliases };
}

function parseManifest(bytes: Buffer, origin: string): ImageManifest {
  const m = JSON.parse(bytes.toString('utf8')) as ImageManifest;
  if (!m.config?.mediaType) throw new KilnError(`cache ${origin}: not a kiln build cache (no config)`);
  return m;
}

/**
 * `--cache-to type=inline`: the image's own config carries the records under this key, their
 * layers being the image's layers (so only the steps whose layers the image has: mode=min).
 */
export const INLINE_CACHE_FIELD = 'kiln.buildcache.v1';

export interface InlineCache {
  /** `layer` indexes the image manifest's layers (= rootfs.diff_ids). */
  records: { key: Digest; layer: number | null }[];
}

/** The value to put under INLINE_CACHE_FIELD of an image config, given the image's layer diffIDs in order. */
export function inlineCacheValue(records: CacheRecordOut[], imageDiffIds: Digest[]): InlineCache {
  const at = new Map(imageDiffIds.map((d, i) => [d, i]));
  const out: InlineCache['records'] = [];
  for (const r of [...records].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    if (r.layer === null) out.push({ key: r.key, layer: null });
    else if (at.has(r.layer.diffId)) out.push({ key: r.key, layer: at.get(r.layer.diffId)! });
  }
  return { records: out };
}

function parseInlineCache(bytes: Buffer, manifest: ImageManifest, origin: string): ParsedCache {
  const cfg = JSON.parse(bytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] }; [INLINE_CACHE_FIELD]?: InlineCache };
  const inline = cfg[INLINE_CACHE_FIELD];
  if (!inline) {
    throw new KilnError(`cache ${origin}: not a kiln build cache (neither a cache artifact nor an image with inline cache)`);
  }
  const diffIds = cfg.rootfs?.diff_ids ?? [];
  const records = new Map<Digest, CacheLayer | null>();
  for (const r of inline.records) {
    if (r.layer === null) {
      records.set(r.key, null);
      continue;
    }
    const d = manifest.layers[r.layer];
    const diffId = diffIds[r.layer];
    if (!d || !diffId || !isDigest(diffId)) throw new KilnError(`cache ${origin}: inline cache names layer ${r.layer}, which the image lacks`);
    records.set(r.key, { digest: d.digest as Digest, size: d.size, mediaType: d.mediaType, diffId });
  }
  return { records, mounts: [], aliases: new Map() };
}

function checkManifest(bytes: Buffer, origin: string): ImageManifest {
  const m = JSON.parse(bytes.toString('utf8')) as ImageManifest & { artifactType?: string };
  if (m.config?.mediaType !== CACHE_CONFIG_TYPE) {
    throw new KilnError(`cache ${origin}: not a kiln build cache (config type ${m.config?.mediaType ?? 'none'})`);
  }
  return m;
}

/**
 * `--cache-from type=registry,ref=REF`: reads the cache's manifest and config (not its layers).
 * Undefined when REF does not exist yet (the first build of a pipeline), as BuildKit does.
 */
export async function openRegistryCache(store: Store, ref: string, opts: PullOptions = {}): Promise<CacheSource | undefined> {
  const parsed = parseReference(ref, '--cache-from');
  const origin = formatReference(parsed);
  const client = clientFor(parsed.registry, opts);
  let top;
  try {
    top = await client.getManifest(parsed.repository, referenceTarget(parsed), [MediaType.ociManifest, MediaType.dockerManifest]);
  } catch (err) {
    if (err instanceof KilnError && /not found in the registry/.test(err.message)) return undefined;
    throw err;
  }
  const manifest = parseManifest(top.bytes, origin);
  const fetchBlob = async (digest: Digest) => {
    if (await store.hasBlob(digest)) return;
    const body = await client.fetchBlob(parsed.repository, digest);
    try {
      await store.ingestStream(body, digest);
    } catch (err) {
      body.destroy();
      throw new KilnError(`cache ${origin}: blob ${digest} could not be stored: ${errorMessage(err)}`);
    }
    await recordBlobSource(store, digest, `${parsed.registry}/${parsed.repository}`);
  };
  await fetchBlob(manifest.config.digest as Digest);
  const configBytes = await store.readBlob(manifest.config.digest as Digest);
  const contents =
    manifest.config.mediaType === CACHE_CONFIG_TYPE ? parseCacheConfig(configBytes, manifest, origin) : parseInlineCache(configBytes, manifest, origin);
  return { origin, digest: top.digest, ...contents, fetchLayer: (l) => fetchBlob(l.digest) };
}

// ---------------------------------------------------------------- OCI layout folders (type=local)

const DEFAULT_LAYOUT_TAG = 'latest';

/** `--cache-to type=local,dest=DIR`: an OCI layout with the artifact under `tag`; blobs already there are kept. */
export async function writeLocalCache(store: Store, contents: CacheContents, dir: string, tag = DEFAULT_LAYOUT_TAG): Promise<Digest> {
  const digest = await writeCacheArtifact(store, contents);
  const manifest = JSON.parse((await store.readBlob(digest)).toString('utf8')) as ImageManifest;
  const blobDir = join(dir, 'blobs', 'sha256');
  try {
    makeDirs(blobDir);
  } catch (err) {
    throw new KilnError(`cannot write the cache to ${dir}: ${(err as Error).message}`, { cause: err });
  }
  for (const d of [manifest.config, ...manifest.layers, { digest, size: 0, mediaType: '' } as Descriptor]) {
    const target = join(blobDir, d.digest.slice('sha256:'.length));
    if (await pathExists(target)) continue;
    const tmp = `${target}.tmp-${process.pid}`;
    await copyFile(store.blobPath(d.digest as Digest), tmp);
    await rename(tmp, target);
  }
  await writeFileAtomic(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  let index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  try {
    index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
  } catch {
    // a new folder
  }
  const size = (await store.readBlob(digest)).length;
  index.manifests = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] !== tag);
  index.manifests.push({
    mediaType: MediaType.ociManifest,
    digest,
    size,
    artifactType: CACHE_ARTIFACT_TYPE,
    annotations: { 'org.opencontainers.image.ref.name': tag },
  } as Descriptor);
  await writeFileAtomic(join(dir, 'index.json'), JSON.stringify(index));
  return digest;
}

/** `--cache-from type=local,src=DIR`: undefined when the folder holds no cache under `tag`. */
export async function openLocalCache(store: Store, dir: string, tag = DEFAULT_LAYOUT_TAG): Promise<CacheSource | undefined> {
  let index: ImageIndex;
  try {
    index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KilnError(`--cache-from: ${join(dir, 'index.json')}: ${errorMessage(err)}`);
  }
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) return undefined;
  const origin = `${dir}:${tag}`;
  const importBlob = async (digest: Digest) => {
    if (await store.hasBlob(digest)) return;
    try {
      await store.ingestStream(fileStream(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length))), digest);
    } catch (err) {
      throw new KilnError(`cache ${origin}: blob ${digest}: ${errorMessage(err)}`);
    }
  };
  await importBlob(entry.digest as Digest);
  const manifest = checkManifest(await store.readBlob(entry.digest as Digest), origin);
  await importBlob(manifest.config.digest as Digest);
  const contents = parseCacheConfig(await store.readBlob(manifest.config.digest as Digest), manifest, origin);
  return { origin, digest: entry.digest as Digest, ...contents, fetchLayer: (l) => importBlob(l.digest) };
}

async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}
