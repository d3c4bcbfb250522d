// What `kiln images`, `inspect` and `history` show about a stored image.
import type { Digest } from '../graph/ops.js';
import type { Store } from '../store/store.js';
import { readJsonBlob, resolveManifest } from '../image/load.js';
import type { ImageConfigFile, ImageManifest } from '../image/types.js';

export interface ImageInfo {
  digest: Digest;
  manifestDigest: Digest;
  manifest: ImageManifest;
  configDigest: Digest;
  config: ImageConfigFile;
  /** Compressed bytes of config and layers. */
  size: number;
}

export async function imageInfo(store: Store, digest: Digest): Promise<ImageInfo> {
  const { digest: manifestDigest, manifest } = await resolveManifest(store, digest);
  const configDigest = manifest.config.digest as Digest;
  const config = await readJsonBlob<ImageConfigFile>(store, configDigest, 'image config');
  const size = manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0);
  return { digest, manifestDigest, manifest, configDigest, config, size };
}

export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v}B` : `${v.toFixed(v < 10 ? 2 : 1)}${units[i]}`;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 3))).join('').trimEnd()).join('\n') + '\n';
}
