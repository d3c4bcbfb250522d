// Images for registry tests, written by hand (tar + gzip + JSON) so these tests do not depend
// on kiln's own image writer: into a kiln store, or into an OCI layout for skopeo to push.

import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Digest } from '../../src/graph/ops.js';
import type { Descriptor, ImageConfigFile, ImageIndex, ImageManifest, Platform } from '../../src/image/types.js';
import { MediaType } from '../../src/image/types.js';
import type { Store } from '../../src/store/store.js';
import { makeBusyboxRootfs } from '../helpers/busybox.js';
import { tempDir } from '../helpers/tmp.js';

export interface Blob {
  digest: Digest;
  bytes: Buffer;
}

function blob(bytes: Buffer): Blob {
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, bytes };
}

export interface Layer extends Blob {
  diffId: Digest;
}

/** A gzipped layer tar of `dir` (numeric owners, fixed mtime, so the same input gives the same digest). */
export function layerOf(dir: string): Layer {
  const tar = execFileSync('tar', ['-C', dir, '--sort=name', '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '-cf', '-', '.'], {
    maxBuffer: 1 << 30,
  });
  const gz = execFileSync('gzip', ['-n', '-c'], { input: tar, maxBuffer: 1 << 30 });
  return { ...blob(gz), diffId: blob(tar).digest };
}

export async function busyboxLayer(): Promise<Layer> {
  const dir = await tempDir('kiln-bb-');
  await makeBusyboxRootfs(dir);
  return layerOf(dir);
}

/** A layer holding one file. */
export async function fileLayer(path: string, content: string | Buffer): Promise<Layer> {
  const dir = await tempDir('kiln-layer-');
  const full = join(dir, path);
  await mkdir(join(full, '..'), { recursive: true });
  await writeFile(full, content);
  return layerOf(dir);
}

export interface ImageBlobs {
  manifest: Blob;
  config: Blob;
  layers: Layer[];
  platform: Platform;
}

export function imageOf(
  layers: Layer[],
  platform: Platform = { os: 'linux', architecture: 'amd64' },
  cmd = ['/bin/sh'],
  extraConfig: Record<string, unknown> = {},
): ImageBlobs {
  const cfg: ImageConfigFile & Record<string, unknown> = {
    ...extraConfig,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Cmd: cmd, Env: ['PATH=/bin:/usr/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `fixture layer ${i}` })),
  };
  const config = blob(Buffer.from(JSON.stringify(cfg)));
  const desc = (b: Blob, mediaType: string): Descriptor => ({ mediaType, digest: b.digest, size: b.bytes.length });
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: desc(config, MediaType.ociConfig),
    layers: layers.map((l) => desc(l, MediaType.ociLayerGzip)),
  };
  return { manifest: blob(Buffer.from(JSON.stringify(m))), config, layers, platform };
}

export function indexOf(images: ImageBlobs[]): Blob {
  const idx: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: images.map((i) => ({
      mediaType: MediaType.ociManifest,
      digest: i.manifest.digest,
      size: i.manifest.bytes.length,
      platform: i.platform,
    })),
  };
  return blob(Buffer.from(JSON.stringify(idx)));
}

/** Puts the image's blobs in a kiln store and tags it. */
export async function storeImage(store: Store, img: ImageBlobs, name?: string): Promise<Digest> {
  for (const b of [...img.layers, img.config, img.manifest]) await store.writeBlob(b.bytes, b.digest);
  if (name) await store.setRef(name, img.manifest.digest);
  return img.manifest.digest;
}

/** An OCI image layout with `top` (a manifest or index) under `tag`. */
export async function writeOciLayout(dir: string, blobs: Blob[], top: Blob, tag: string): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const b of [...blobs, top]) await writeFile(join(dir, 'blobs', 'sha256', b.digest.slice(7)), b.bytes);
  const isIndex = (JSON.parse(top.bytes.toString()) as { manifests?: unknown }).manifests !== undefined;
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: isIndex ? MediaType.ociIndex : MediaType.ociManifest,
        digest: top.digest,
        size: top.bytes.length,
        annotations: { 'org.opencontainers.image.ref.name': tag },
      },
    ],
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
}

export function allBlobs(img: ImageBlobs): Blob[] {
  return [img.config, ...img.layers, img.manifest];
}
