// --iidfile and --metadata-file, with the keys and choice of digest that buildx uses.

import { writeFile, rename } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { Descriptor } from '../image/types.js';

export interface BuildResultDigests {
  manifestDigest: string;
  configDigest: string;
  /** The manifest's descriptor (media type, size). */
  descriptor?: Descriptor;
  names?: string[];
  /** The image was pushed: the id users can pull by is then the manifest digest. */
  pushed?: boolean;
}

async function writeSmallFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.kiln-${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

/** The image id as buildx writes it: the config digest, or the manifest digest once pushed. */
export async function writeIidFile(path: string, r: BuildResultDigests): Promise<void> {
  await writeSmallFile(path, r.pushed ? r.manifestDigest : r.configDigest);
}

export function buildMetadata(r: BuildResultDigests): Record<string, unknown> {
  const out: Record<string, unknown> = {
    'containerimage.config.digest': r.configDigest,
    'containerimage.digest': r.manifestDigest,
  };
  if (r.descriptor) out['containerimage.descriptor'] = { mediaType: r.descriptor.mediaType, digest: r.descriptor.digest, size: r.descriptor.size };
  if (r.names && r.names.length > 0) out['image.name'] = r.names.join(',');
  return out;
}

export async function writeMetadataFile(path: string, r: BuildResultDigests): Promise<void> {
  await writeSmallFile(path, JSON.stringify(buildMetadata(r), null, 2) + '\n');
}
