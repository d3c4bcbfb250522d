// The bottom layer of every RUN's overlay: empty /proc, /dev, /sys and /etc/hosts,
// /etc/resolv.conf for the sandbox to mount on. With the mount targets already
// in a lower layer, the sandbox creates nothing in the upperdir for them (no stub to clean up,
// no copy-up of /etc). Being the bottom layer it hides nothing of the image: every image layer
// sits above it, and an image folder's owner and mode win over the skeleton's.

import { existsSync, mkdirSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../../store/store.js';
import { renameIntoPlace } from '../../util/fs.js';

// v2: no /etc/hostname, which v1 had and the sandbox no longer mounts on.
const NAME = 'sandbox-skeleton-v2';
const PRIVATE_NAME = 'sandbox-private-v1';
const known = new Map<string, string>();
const knownPrivate = new Map<string, string>();

/**
 * The mount point of every step's private tmpfs (root overlay mount point, secret and heredoc
 * contents). Each step mounts its own tmpfs there inside its mount namespace, so one empty
 * folder serves all of them, at once too, and no step makes or removes a folder of its own for
 * it. The helper makes it again should a prune have removed it.
 */
export function privateMountPoint(store: Store): string {
  let dir = knownPrivate.get(store.root);
  if (dir === undefined) {
    dir = store.path('mounts', PRIVATE_NAME);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    knownPrivate.set(store.root, dir);
  }
  return dir;
}

export async function ensureSkeleton(store: Store): Promise<string> {
  const dir = store.path('mounts', NAME);
  if (known.get(store.root) === dir || existsSync(dir)) {
    known.set(store.root, dir);
    return dir;
  }
  const staging = await store.tempDir('skeleton');
  const fs = join(staging, 'fs');
  for (const d of ['proc', 'dev', 'sys', 'etc']) await mkdir(join(fs, d), { recursive: true });
  for (const d of ['', 'proc', 'dev', 'sys', 'etc']) await chmod(join(fs, d), 0o755);
  for (const f of ['hosts', 'resolv.conf']) await writeFile(join(fs, 'etc', f), '', { mode: 0o644 });
  try {
    await renameIntoPlace(fs, dir); // false: another kiln made it first
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  known.set(store.root, dir);
  return dir;
}
