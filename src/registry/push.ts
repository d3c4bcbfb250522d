// Pushing an image from the store: blobs the registry already has are skipped (HEAD), blobs
// another repository of the same registry holds are mounted, the rest are uploaded; the
// manifest goes last, so the tag never names something incomplete.

import pLimit from 'p-limit';
import type { Digest } from '../graph/ops.js';
import type { Store } from '../store/store.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../image/types.js';
import { MediaType } from '../image/types.js';
import { KilnError } from '../util/errors.js';
import { fileStream } from '../util/fs.js';
import { clientFor, type RegistryClient, type UploadOptions } from './client.js';
import { formatReference, parseReference, repositoryName, type ImageReference } from './reference.js';
import { blobSources, recordBlobSource } from './blob-sources.js';
import type { PullOptions, RegistryEvent } from './pull.js';

export interface PushOptions extends Omit<PullOptions, 'platform' | 'layers'> {
  upload?: UploadOptions;
}

export interface PushResult {
  /** Normalised reference pushed to. */
  ref: string;
  /** Digest of the pushed manifest (or index). */
  digest: Digest;
  uploaded: number;
  mounted: number;
  skipped: number;
}

interface Counters {
  uploaded: number;
  mounted: number;
  skipped: number;
}

/**
 * Pushes the manifest (or index) `manifestDigest` and everything it names from the store to
 * `ref`. A reference with a tag is tagged; one with only a digest must match `manifestDigest`.
 */
export async function pushImage(store: Store, manifestDigest: Digest, ref: string, opts: PushOptions = {}): Promise<PushResult> {
  return startPush(store, ref, opts).finish(manifestDigest);
}

/**
 * A push whose blobs may be uploaded before its manifest exists: an exporter compressing the
 * image's layers hands each to `upload` as soon as it is stored, so uploads overlap compression.
 * Nothing is tagged before `finish`; `settle` waits for uploads already started (after a failure
 * elsewhere, before giving up).
 */
export interface PushSession {
  upload(d: Descriptor): void;
  finish(manifestDigest: Digest): Promise<PushResult>;
  settle(): Promise<void>;
}

export function startPush(store: Store, ref: string, opts: PushOptions = {}): PushSession {
  if (ref === '') throw new KilnError('push: no image name given (type=registry needs name=REF)', { exitCode: 2 });
  const parsed = parseReference(ref, 'push');
  const client = clientFor(parsed.registry, opts);
  const counters: Counters = { uploaded: 0, mounted: 0, skipped: 0 };
  const limit = pLimit(opts.concurrency ?? 4);
  const blobs = new Map<Digest, Promise<void>>();
  const push = (d: Descriptor): Promise<void> => {
    const digest = d.digest as Digest;
    let done = blobs.get(digest);
    if (!done) {
      done = limit(() => pushBlob(store, client, parsed, d, counters, opts));
      // Reported by finish (or dropped by settle), not left unhandled meanwhile.
      done.catch(() => {});
      blobs.set(digest, done);
    }
    return done;
  };
  return {
    upload: (d) => void push(d),
    settle: async () => {
      await Promise.allSettled(blobs.values());
    },
    finish: async (manifestDigest) => {
      if (parsed.digest && parsed.digest !== manifestDigest) {
        throw new KilnError(`push ${formatReference(parsed)}: the image's digest is ${manifestDigest}, not ${parsed.digest}`);
      }
      await pushManifestTree(store, client, parsed, manifestDigest, parsed.digest ?? parsed.tag ?? 'latest', push);
      return { ref: formatReference(parsed), digest: manifestDigest, ...counters };
    },
  };
}

async function pushManifestTree(
  store: Store,
  client: RegistryClient,
  ref: ImageReference,
  digest: Digest,
  tagOrDigest: string,
  push: (d: Descriptor) => Promise<void>,
): Promise<void> {
  if (!(await store.hasBlob(digest))) throw new KilnError(`push ${formatReference(ref)}: manifest ${digest} is not in the store`);
  const bytes = await store.readBlob(digest);
  const doc = JSON.parse(bytes.toString('utf8')) as ImageManifest & ImageIndex;
  const isIndex = Array.isArray(doc.manifests);
  const mediaType = doc.mediaType ?? (isIndex ? MediaType.ociIndex : MediaType.ociManifest);
  if (isIndex) {
    for (const m of doc.manifests) await pushManifestTree(store, client, ref, m.digest as Digest, m.digest, push);
  } else {
    // All settle before a failure is reported: no upload is left running behind it.
    const settled = await Promise.allSettled([doc.config, ...doc.layers].map(push));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
  }
  await client.putManifest(ref.repository, tagOrDigest, bytes, mediaType);
}

async function pushBlob(store: Store, client: RegistryClient, ref: ImageReference, d: Descriptor, counters: Counters, opts: PushOptions): Promise<void> {
  const digest = d.digest as Digest;
  const name = formatReference(ref);
  const repo = ref.repository;
  const emit = (e: RegistryEvent) => opts.onEvent?.(e);
  if (await client.hasBlob(repo, digest, [`repository:${repo}:pull,push`])) {
    counters.skipped++;
    emit({ type: 'blob-skip', ref: name, digest, reason: 'exists' });
    await recordBlobSource(store, digest, repositoryName(ref));
    return;
  }
  if (!(await store.hasBlob(digest))) throw new KilnError(`push ${name}: blob ${digest} is not in the store`);
  const prefix = `${ref.registry}/`;
  for (const src of await blobSources(store, digest)) {
    if (!src.startsWith(prefix) || src === repositoryName(ref)) continue;
    if (await client.mountBlob(repo, digest, src.slice(prefix.length))) {
      counters.mounted++;
      emit({ type: 'blob-skip', ref: name, digest, reason: 'mounted' });
      await recordBlobSource(store, digest, repositoryName(ref));
      return;
    }
  }
  const size = await store.blobSize(digest);
  emit({ type: 'blob-start', ref: name, digest, size });
  const path = store.blobPath(digest);
  await client.uploadBlob(
    repo,
    digest,
    size,
    (start, end) => fileStream(path, start === undefined ? {} : { start, end: (end ?? size) - 1 }),
    opts.upload,
  );
  counters.uploaded++;
  emit({ type: 'blob-done', ref: name, digest, size });
  await recordBlobSource(store, digest, repositoryName(ref));
}
