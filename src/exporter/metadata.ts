// --iidfile and --metadata-file, with the keys and choice of digest that buildx uses.

import type { Descriptor } from '../image/types.js';
import { writeSmallFileAtomic } from './atomic.js';

export interface BuildResultDigests {
  manifestDigest: string;
  configDigest: string;
  /** The manifest's descriptor (media type, size). */
  descriptor?: Descriptor;
  names?: string[];
  /** The image was pushed: the id users can pull by is then the manifest digest. */
  pushed?: boolean;
}

/** The image id as buildx writes it: the config digest, or the manifest digest once pushed. */
export async function writeIidFile(path: string, r: BuildResultDigests): Promise<void> {
  await writeSmallFileAtomic(path, r.pushed ? r.manifestDigest : r.configDigest, '--iidfile');
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
  await writeSmallFileAtomic(path, JSON.stringify(buildMetadata(r), null, 2) + '\n', '--metadata-file');
}
