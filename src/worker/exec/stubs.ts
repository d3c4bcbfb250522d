// The sandbox creates a mount target that the image lacks (/proc, /dev, /etc/hosts, a
// --mount target, ...) in the root overlay, so it lands in the upperdir. After the step those
// stubs, and the folders overlayfs copied up only to hold them, are taken out again: they
// are the sandbox's, not the step's changes.

// Synchronous calls on purpose: a handful of tiny metadata operations, where a thread-pool
// round trip per call would cost more than the calls (this runs after every RUN).
import { lstatSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RootfsView } from '../../store/rootfs-view.js';
import { getXattr } from '../../util/syscalls.js';

export interface Stub {
  type: 'd' | 'f';
  path: string;
}

function tryLstat(p: string) {
  return lstatSync(p, { throwIfNoEntry: false });
}

function isOpaque(p: string): boolean {
  return getXattr(p, 'trusted.overlay.opaque')?.toString() === 'y';
}

function isEmptyDir(p: string): boolean {
  return readdirSync(p).length === 0;
}

export async function removeStubs(upper: string, stubs: Stub[], lower: RootfsView): Promise<void> {
  const parents = new Set<string>();
  for (const stub of [...stubs].reverse()) {
    const host = join(upper, stub.path);
    const st = tryLstat(host);
    if (!st) continue;
    if (stub.type === 'd' && st.isDirectory() && !isOpaque(host) && isEmptyDir(host)) rmdirSync(host);
    else if (stub.type === 'f' && st.isFile() && st.size === 0) unlinkSync(host);
    else continue;
    parents.add(dirname(stub.path));
  }
  // Walk up from each stub's parent: a folder that exists below and is now empty in the
  // upperdir, with the same owner and mode, was copied up for the stub alone.
  const stubPaths = new Set(stubs.map((s) => s.path));
  const todo = [...parents].sort((a, b) => b.length - a.length);
  const seen = new Set<string>();
  while (todo.length > 0) {
    const rel = todo.shift()!;
    if (rel === '/' || rel === '.' || seen.has(rel) || stubPaths.has(rel)) continue;
    seen.add(rel);
    const host = join(upper, rel);
    const st = tryLstat(host);
    if (!st || !st.isDirectory() || isOpaque(host) || !isEmptyDir(host)) continue;
    const below = await lower.lstat(rel);
    if (!below || below.type !== 'dir') continue;
    if (below.stats.mode !== st.mode || below.stats.uid !== st.uid || below.stats.gid !== st.gid) continue;
    rmdirSync(host);
    todo.push(dirname(rel));
    todo.sort((a, b) => b.length - a.length);
  }
}
