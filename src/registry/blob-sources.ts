// Which repositories (`registry/repo`) are known to hold a blob, so a push to another repository
// of the same registry can ask for a cross-repository mount instead of uploading the bytes.
// Kept beside the store's blobs as small files; losing them only costs an upload.

import { readFile } from 'node:fs/promises';
import type { Digest } from '../graph/ops.js';
import type { Store } from '../store/store.js';
import { hexOf } from '../util/digest.js';

const MAX_SOURCES = 16;

function sourcesPath(store: Store, digest: Digest): string {
  return store.path('registry-sources', hexOf(digest));
}

export async function blobSources(store: Store, digest: Digest): Promise<string[]> {
  try {
    return JSON.parse(await readFile(sourcesPath(store, digest), 'utf8')) as string[];
  } catch {
    return [];
  }
}

/** Remembers that `repository` (`registry/repo`) holds `digest`; newest first. */
export async function recordBlobSource(store: Store, digest: Digest, repository: string): Promise<void> {
  const cur = await blobSources(store, digest);
  if (cur[0] === repository) return;
  const next = [repository, ...cur.filter((r) => r !== repository)].slice(0, MAX_SOURCES);
  await store.writeFileAtomic(sourcesPath(store, digest), JSON.stringify(next));
}
