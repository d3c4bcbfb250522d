// `--build-context NAME=oci-layout://PATH[:TAG][@DIGEST]`: an image read from an OCI image layout
// folder (what `-o type=oci,tar=false`, `skopeo copy … oci:DIR:TAG` or umoci write), as buildx
// reads one. The chosen manifest, its config and its layers are copied into the store, each
// checked against its digest, the first time a build needs them; nothing is ever pulled.

import pLimit from 'p-limit';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Digest } from '../graph/ops.js';
import type { Store } from '../store/store.js';
import { hexOf, isDigest } from '../util/digest.js';
import { KilnError } from '../util/errors.js';
import { fileStream, pathExists } from '../util/fs.js';
import { formatPlatform, normalizePlatform, platformMatches, selectPlatform } from '../registry/platform.js';
import { isIndex, type ResolvedImage } from '../registry/pull.js';
import type { Descriptor, ImageConfigFile, ImageIndex, ImageManifest, Platform } from './types.js';

export interface LayoutImage {
  /** The layout folder, absolute. */
  dir: string;
  tag: string;
  /** What the tag named when the flag was read (or the digest the flag gave): an index or a manifest. */
  digest: Digest;
  /** How builds name it: `oci-layout://DIR:TAG@DIGEST`, buildx's form. */
  ref: string;
}

export const LAYOUT_SCHEME = 'oci-layout://';

/** The path of a blob inside a layout, for a digest the layout itself gave. */
export function layoutBlobPath(dir: string, digest: string, label: string): string {
  if (!isDigest(digest)) throw new KilnError(`${label}: unsupported digest ${digest}`);
  return join(dir, 'blobs', 'sha256', hexOf(digest as Digest));
}

/**
 * Splits the value as buildx does (the digest after the first `@`, then the tag after the first
 * `:`, `latest` without one) and, without a digest, finds what the tag names in index.json: a
 * manifest whose `io.containerd.image.name`, then one whose `org.opencontainers.image.ref.name`,
 * is the tag, else the index's only manifest.
 */
export function parseLayoutContext(value: string, what: string): LayoutImage {
  const rest = value.slice(LAYOUT_SCHEME.length);
  const at = rest.indexOf('@');
  const pathAndTag = at < 0 ? rest : rest.slice(0, at);
  const colon = pathAndTag.indexOf(':');
  const path = colon < 0 ? pathAndTag : pathAndTag.slice(0, colon);
  const tag = colon < 0 ? 'latest' : pathAndTag.slice(colon + 1);
  if (path === '') throw new KilnError(`${what}: ${value} names no folder`, { exitCode: 2 });
  if (tag === '') throw new KilnError(`${what}: ${value} has an empty tag`, { exitCode: 2 });
  const dir = resolve(path);
  let digest: Digest;
  if (at >= 0) {
    const given = rest.slice(at + 1);
    if (!isDigest(given)) throw new KilnError(`${what}: "${given}" is not a sha256 digest`, { exitCode: 2 });
    digest = given;
  } else digest = digestOfTag(dir, tag, value, what);
  return { dir, tag, digest, ref: `${LAYOUT_SCHEME}${dir}:${tag}@${digest}` };
}

function digestOfTag(dir: string, tag: string, value: string, what: string): Digest {
  const fail = (why: string): never => {
    throw new KilnError(`${what}: oci-layout reference ${value} could not be resolved: ${why}`, { exitCode: 2 });
  };
  let text: string;
  try {
    text = readFileSync(join(dir, 'index.json'), 'utf8');
  } catch (err) {
    return fail(`cannot read ${join(dir, 'index.json')}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let index: ImageIndex;
  try {
    index = JSON.parse(text) as ImageIndex;
  } catch {
    return fail('index.json is not valid JSON');
  }
  const manifests = Array.isArray(index.manifests) ? index.manifests : [];
  const named = (key: string) => manifests.find((m) => m.annotations?.[key] === tag);
  const chosen = named('io.containerd.image.name') ?? named('org.opencontainers.image.ref.name') ?? (manifests.length === 1 ? manifests[0] : undefined);
  if (!chosen) {
    const tags = manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']).filter((t): t is string => t !== undefined);
    return fail(`no image is tagged "${tag}" (tags: ${tags.length > 0 ? tags.join(', ') : 'none'})`);
  }
  if (!isDigest(chosen.digest)) return fail(`unsupported digest ${chosen.digest}`);
  return chosen.digest;
}

/**
 * The image for `platform`: an index is narrowed to that platform's manifest, then the manifest,
 * its config and its layers enter the store (blobs it has already are not read again).
 */
export async function loadLayoutImage(store: Store, layout: LayoutImage, platform: Platform): Promise<ResolvedImage> {
  // Errors are put after the image's reference (which names the folder) by the frontend.
  const label = 'the layout';
  let copied = 0;
  const copy = async (digest: string): Promise<void> => {
    const path = layoutBlobPath(layout.dir, digest, label);
    if (await store.hasBlob(digest as Digest)) return;
    if (!(await pathExists(path))) throw new KilnError(`blob ${digest} is missing from the layout`);
    try {
      await store.ingestStream(fileStream(path), digest as Digest);
    } catch (err) {
      throw new KilnError(`the layout's ${(err as Error).message}`, { cause: err });
    }
    copied++;
  };
  const document = async <T>(digest: string): Promise<T> => {
    await copy(digest);
    try {
      return JSON.parse((await store.readBlob(digest as Digest)).toString('utf8')) as T;
    } catch {
      throw new KilnError(`the layout's ${digest} is not valid JSON`);
    }
  };
  const want = normalizePlatform(platform);
  let digest: string = layout.digest;
  let doc = await document<ImageManifest & ImageIndex>(digest);
  if (isIndex(doc.mediaType, doc)) {
    digest = selectPlatform(doc.manifests ?? [], want, "the layout's index").digest;
    doc = await document<ImageManifest & ImageIndex>(digest);
    if (isIndex(doc.mediaType, doc)) throw new KilnError(`the layout's index ${digest} lists an index: nested indexes are not supported`);
  }
  if (!doc.config?.digest || !Array.isArray(doc.layers)) throw new KilnError(`the layout's ${digest} is not an image manifest (no config or layers)`);
  const manifest = doc as ImageManifest;
  const config = await document<ImageConfigFile>(manifest.config.digest);
  const have = normalizePlatform({ os: config.os, architecture: config.architecture, variant: config.variant });
  if (!platformMatches(want, have)) throw new KilnError(`the layout's image is for ${formatPlatform(have)}, not ${formatPlatform(want)}`);
  // Hashing a layer keeps a CPU busy: two at a time, as `kiln load` does.
  const limit = pLimit(2);
  const layers = new Set((manifest.layers as Descriptor[]).map((l) => l.digest));
  await Promise.all([...layers].map((d) => limit(() => copy(d))));
  return { ref: layout.ref, digest: digest as Digest, manifest, config, configDigest: manifest.config.digest as Digest, platform: have, downloaded: copied };
}
