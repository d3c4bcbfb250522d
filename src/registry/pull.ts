// Pulling: a reference becomes a platform-specific manifest, its config and its layer blobs in
// the local store, tagged so `FROM REF` finds it. Blobs are verified while they stream and
// enter the store only whole and correct; blobs already there are not downloaded again.

import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { branch } from '../util/stream-branch.js';
import { coalesce } from '../util/coalesce.js';
import type { Digest } from '../graph/ops.js';
import type { Store } from '../store/store.js';
import type { Descriptor, ImageConfigFile, ImageIndex, ImageManifest, Platform } from '../image/types.js';
import { MediaType } from '../image/types.js';
import { KilnError, errorMessage } from '../util/errors.js';
import { clientFor, NetworkError, type RegistryClient, type RegistryOptions } from './client.js';
import { formatReference, parseReference, referenceTarget, repositoryName, type ImageReference } from './reference.js';
import { defaultPlatform, formatPlatform, normalizePlatform, platformMatches, selectPlatform } from './platform.js';
import { recordBlobSource } from './blob-sources.js';

export type RegistryEvent =
  | { type: 'resolve'; ref: string; digest: Digest }
  | { type: 'blob-start'; ref: string; digest: Digest; size: number }
  | { type: 'blob-done'; ref: string; digest: Digest; size: number }
  | { type: 'blob-skip'; ref: string; digest: Digest; reason: 'present' | 'exists' | 'mounted' };

export interface PullOptions extends RegistryOptions {
  /** Platform to pick from an index; default the machine's. */
  platform?: Platform;
  /** Parallel blob downloads. */
  concurrency?: number;
  /** Also fetch layer blobs (default true); false stops at manifest + config. */
  layers?: boolean;
  onEvent?: (e: RegistryEvent) => void;
  /**
   * While layers are fetched: called for each as soon as its blob is in the store (downloaded, or
   * there already), with its diffID from the config: a build unpacks it while others download.
   */
  onLayer?: (layer: Descriptor, diffId: Digest) => void;
  /**
   * Called as a layer's download starts, with its bytes as they arrive (the first attempt's
   * only) and a promise that settles once the blob is in the store, checked against its digest,
   * or fails: a build unpacks the layer on the way. The bytes must be read, or destroyed.
   */
  onLayerDownload?: (layer: Descriptor, diffId: Digest, bytes: Readable, stored: Promise<void>) => void;
}

export interface ResolveOptions extends PullOptions {
  /**
   * `missing` (docker's default for FROM): use the local image when the store has it, pull
   * otherwise. `always` (`--pull`): ask the registry what the tag is now. `never`: local only.
   * A boolean is build's `--pull` flag: true means `always`, false `missing`.
   */
  pull?: 'missing' | 'always' | 'never' | boolean;
}

export interface ResolvedImage {
  /** Normalised reference: `docker.io/library/busybox:latest`. */
  ref: string;
  /** Digest of the platform-specific image manifest (what `source.image` ops carry). */
  digest: Digest;
  manifest: ImageManifest;
  config: ImageConfigFile;
  configDigest: Digest;
  platform: Platform;
  /** Blobs downloaded to get here (0 when everything was local). */
  downloaded: number;
}

export function isIndex(mediaType: string | undefined, doc: { manifests?: unknown }): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList || (mediaType === undefined && Array.isArray(doc.manifests));
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    throw new KilnError(`${what} is not valid JSON`);
  }
}

/**
 * The image `ref` names, for `platform`, as the build's FROM needs it. Docker semantics:
 * local when present (unless `pull: 'always'`), pulled otherwise.
 */
export async function resolveImage(store: Store, ref: string, platform: Platform | undefined, opts: ResolveOptions = {}): Promise<ResolvedImage> {
  const parsed = parseReference(ref, 'FROM');
  const want = normalizePlatform(platform ?? opts.platform ?? defaultPlatform());
  const mode = opts.pull === true ? 'always' : opts.pull === false || opts.pull === undefined ? 'missing' : opts.pull;
  if (mode !== 'always') {
    const local = await findLocalImage(store, parsed, want, opts.layers ?? true);
    if (local) return local;
    if (mode === 'never') throw new KilnError(`${formatReference(parsed)}: no such image in the store for ${formatPlatform(want)}`);
  }
  return pullImage(store, ref, { ...opts, platform: want });
}

/** The image if the store holds it whole (manifest, config, and layers unless `needLayers` is false). */
export async function findLocalImage(store: Store, ref: ImageReference, platform: Platform, needLayers = true): Promise<ResolvedImage | undefined> {
  let digest: Digest | undefined;
  if (ref.digest) digest = ref.digest as Digest;
  else digest = (await store.getRef(formatReference(ref)))?.digest;
  if (!digest || !(await store.hasBlob(digest))) return undefined;
  let bytes = await store.readBlob(digest);
  let doc = parseJson<ImageManifest & ImageIndex>(bytes, `manifest ${digest}`);
  if (isIndex(doc.mediaType, doc)) {
    const d = (doc.manifests ?? []).find((m) => m.platform && platformMatches(platform, m.platform));
    if (!d || !(await store.hasBlob(d.digest as Digest))) return undefined;
    digest = d.digest as Digest;
    bytes = await store.readBlob(digest);
    doc = parseJson<ImageManifest & ImageIndex>(bytes, `manifest ${digest}`);
  }
  const manifest = doc as ImageManifest;
  if (!manifest.config || !(await store.hasBlob(manifest.config.digest as Digest))) return undefined;
  const config = parseJson<ImageConfigFile>(await store.readBlob(manifest.config.digest as Digest), `config ${manifest.config.digest}`);
  // A tag pulled for another platform is not this platform's image.
  if (!platformMatches(platform, { os: config.os, architecture: config.architecture, variant: config.variant })) return undefined;
  if (needLayers) {
    for (const l of manifest.layers) if (!(await store.hasBlob(l.digest as Digest))) return undefined;
  }
  return {
    ref: formatReference(ref),
    digest,
    manifest,
    config,
    configDigest: manifest.config.digest as Digest,
    platform: normalizePlatform({ os: config.os, architecture: config.architecture, variant: config.variant }),
    downloaded: 0,
  };
}

/**
 * Always asks the registry what `ref` is now, then fetches what the store lacks. The tag (not
 * a digest reference) is pointed at the platform-specific manifest, as docker's classic store does.
 */
export async function pullImage(store: Store, ref: string, opts: PullOptions = {}): Promise<ResolvedImage> {
  const parsed = parseReference(ref, 'pull');
  const name = formatReference(parsed);
  const want = normalizePlatform(opts.platform ?? defaultPlatform());
  const client = clientFor(parsed.registry, opts);
  const repo = parsed.repository;

  // What the registry has may already be here: a digest names fixed content, and a tag's
  // current digest costs only a HEAD (which registries do not count against pull limits).
  // A registry that refuses HEAD is not an error here: the GET below says what is wrong.
  const known = parsed.digest ?? (await client.headManifest(repo, referenceTarget(parsed)).catch(() => undefined))?.digest;
  if (known && (await store.hasBlob(known as Digest))) {
    const local = await findLocalImage(store, { ...parsed, digest: known }, want, opts.layers ?? true);
    if (local) {
      opts.onEvent?.({ type: 'resolve', ref: name, digest: local.digest });
      if (!parsed.digest) await store.setRef(name, local.digest);
      return { ...local, ref: name };
    }
  }

  const top = await client.getManifest(repo, referenceTarget(parsed));
  let doc = parseJson<ImageManifest & ImageIndex>(top.bytes, `${name}: manifest`);
  let manifestBytes = top.bytes;
  let manifestDigest = top.digest;
  let indexBytes: Buffer | undefined;
  if (isIndex(top.mediaType, doc)) {
    indexBytes = top.bytes;
    const chosen = selectPlatform(doc.manifests ?? [], want, name);
    const m = await client.getManifest(repo, chosen.digest);
    manifestBytes = m.bytes;
    manifestDigest = m.digest;
    doc = parseJson<ImageManifest & ImageIndex>(m.bytes, `${name}: manifest ${m.digest}`);
    if (isIndex(m.mediaType, doc)) throw new KilnError(`${name}: nested image indexes are not supported`);
  }
  const manifest = doc as ImageManifest;
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) {
    throw new KilnError(`${name}: manifest ${manifestDigest} is not an image manifest (no config or layers)`);
  }
  opts.onEvent?.({ type: 'resolve', ref: name, digest: manifestDigest });

  let downloaded = 0;
  const fetchOne = async (d: Descriptor, diffId?: Digest): Promise<void> => {
    const digest = d.digest as Digest;
    if (await store.hasBlob(digest)) {
      opts.onEvent?.({ type: 'blob-skip', ref: name, digest, reason: 'present' });
      return;
    }
    if (d.urls?.length && d.mediaType.includes('foreign')) {
      throw new KilnError(`${name}: layer ${digest} is a foreign layer (hosted at ${d.urls[0]}); kiln does not fetch those`);
    }
    opts.onEvent?.({ type: 'blob-start', ref: name, digest, size: d.size });
    const tap = diffId && opts.onLayerDownload ? (bytes: Readable, stored: Promise<void>) => opts.onLayerDownload!(d, diffId, bytes, stored) : undefined;
    await downloadBlob(store, client, repo, digest, name, tap);
    downloaded++;
    opts.onEvent?.({ type: 'blob-done', ref: name, digest, size: d.size });
  };

  // The config first: it must parse before layers are worth fetching.
  await fetchOne(manifest.config);
  const config = parseJson<ImageConfigFile>(await store.readBlob(manifest.config.digest as Digest), `${name}: config ${manifest.config.digest}`);
  if (opts.layers ?? true) {
    const limit = pLimit(opts.concurrency ?? 4);
    const diffIds = config.rootfs?.diff_ids ?? [];
    const jobs = manifest.layers.map((l, i) =>
      limit(async () => {
        // A config that does not match the manifest is loadImage's to report.
        const diffId = diffIds.length === manifest.layers.length ? (diffIds[i] as Digest) : undefined;
        await fetchOne(l, diffId);
        if (diffId) opts.onLayer?.(l, diffId);
      }),
    );
    const settled = await Promise.allSettled(jobs);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
  }

  // Manifests last: a manifest in the store promises that what it names is there (or fetchable).
  if (indexBytes) await store.writeBlob(indexBytes, top.digest);
  await store.writeBlob(manifestBytes, manifestDigest);
  for (const d of [manifest.config, ...manifest.layers]) await recordBlobSource(store, d.digest as Digest, repositoryName(parsed));
  if (!parsed.digest) await store.setRef(name, manifestDigest);

  return {
    ref: name,
    digest: manifestDigest,
    manifest,
    config,
    configDigest: manifest.config.digest as Digest,
    platform: normalizePlatform({ os: config.os, architecture: config.architecture, variant: config.variant }),
    downloaded,
  };
}

/**
 * Streams one blob into the store, verified against its digest; a mismatch stores nothing and
 * is final. A connection that breaks mid-stream is retried (registries behind CDNs do that).
 */
async function downloadBlob(
  store: Store, client: RegistryClient, repo: string, digest: Digest, name: string, tap?: (bytes: Readable, stored: Promise<void>) => void,
): Promise<void> {
  const attempts = 3;
  for (let attempt = 1; ; attempt++) {
    let body: Readable | undefined;
    let outcome: { stored: () => void; failed: (err: unknown) => void } | undefined;
    try {
      body = await client.fetchBlob(repo, digest);
      const pieces = coalesce();
      body.on('error', (err) => pieces.destroy(err));
      let source: Readable = body.pipe(pieces);
      if (attempt === 1 && tap) {
        const b = branch();
        pieces.on('error', (err) => b.stream.destroy(err));
        source = pieces.pipe(b.stream);
        const stored = new Promise<void>((resolve, reject) => (outcome = { stored: resolve, failed: reject }));
        stored.catch(() => undefined); // the tap's to see; the download reports its own failure
        tap(b.side, stored);
      }
      await store.ingestStream(source, digest);
      outcome?.stored();
      return;
    } catch (err) {
      outcome?.failed(err);
      body?.destroy();
      if (err instanceof KilnError && err.message.includes('does not match')) {
        throw new KilnError(`${name}: blob ${digest} from ${client.registry} is corrupt: ${err.message}`);
      }
      // The registry's own answers (404, 401, ...) are final; broken connections are not.
      const transient = err instanceof NetworkError || !(err instanceof KilnError);
      if (!transient) throw err;
      if (attempt >= attempts || client.aborted()) {
        throw new KilnError(`${name}: downloading blob ${digest} failed: ${errorMessage(err)}`);
      }
    }
  }
}

