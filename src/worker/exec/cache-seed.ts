// RUN --mount=type=cache,from=X,source=P: a new cache folder starts as a copy of P in X (a stage,
// an image, or the context), P's own owner and mode included, as BuildKit bases the cache on
// that input.

import { copyFile, lchown, chmod, mkdir, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { ResolvedInput, WorkerContext } from '../types.js';
import { RootfsView, type ViewEntry } from '../../store/rootfs-view.js';
import { KilnError } from '../../util/errors.js';

async function copyEntry(e: ViewEntry, dest: string, view: RootfsView): Promise<void> {
  if (e.type === 'dir') {
    await mkdir(dest, { recursive: true });
    await chmod(dest, e.stats.mode & 0o7777);
  } else if (e.type === 'file') {
    await copyFile(e.host, dest);
    await chmod(dest, e.stats.mode & 0o7777);
  } else if (e.type === 'symlink') {
    await symlink(await view.readlink(e), dest);
  } else {
    return; // devices and sockets are not worth seeding a cache with
  }
  await lchown(dest, e.stats.uid, e.stats.gid);
  if (e.type !== 'symlink') await utimes(dest, e.stats.mtimeMs / 1000, e.stats.mtimeMs / 1000);
}

export async function seedCacheDir(dir: string, input: ResolvedInput, source: string, ctx: WorkerContext): Promise<void> {
  const view = input.kind === 'context' ? new RootfsView([input.dir]) : RootfsView.forSnapshots(ctx.store, input.layers);
  const start = await view.stat(source || '/');
  if (!start) throw new KilnError(`cache mount source ${source} does not exist in its from input`);
  if (start.type !== 'dir') throw new KilnError(`cache mount source ${source} is not a directory`);
  const prefix = start.path === '/' ? '' : start.path;
  for await (const e of view.walk(start)) {
    if (e === start) continue;
    await copyEntry(e, join(dir, e.path.slice(prefix.length)), view);
  }
  // The folder itself is the source's too: its owner, mode and time (BuildKit mounts that folder).
  await copyEntry(start, dir, view);
}
