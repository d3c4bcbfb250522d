// Test images made straight through the store API (no build needed): a snapshot per layer.
import { mkdir, utimes, readdir, lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Store } from '../../src/store/store.js';

/** Commits a snapshot whose folder `fill` writes; returns its id. */
export async function commitTestSnapshot(store: Store, fill: (dir: string) => Promise<void>, id = `test-${randomBytes(8).toString('hex')}`): Promise<string> {
  const staging = await store.tempDir('fixture');
  const fs = join(staging, 'fs');
  await mkdir(fs);
  await fill(fs);
  await store.commitSnapshot(id, fs, { source: 'file' });
  await rm(staging, { recursive: true, force: true });
  return id;
}

/** Sets every mtime under `dir` (the folder itself too) to `secs`. */
export async function touchTree(dir: string, secs: number): Promise<void> {
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (st.isDirectory()) await touchTree(p, secs);
    else if (!st.isSymbolicLink()) await utimes(p, secs, secs);
  }
  await utimes(dir, secs, secs);
}

export const PLATFORM = { architecture: 'amd64', os: 'linux' } as const;
