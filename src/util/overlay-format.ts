// How overlayfs marks deletions in an upper (or snapshot) folder, and how a layer tar says the
// same: one place for every reader and writer of either form.

import type { Stats } from 'node:fs';
import { getXattr, type HostPath } from './syscalls.js';

/** A deleted name in a layer tar: `.wh.<name>`. */
export const WHITEOUT_PREFIX = '.wh.';
/** A directory that hides everything below it, in a layer tar. */
export const OPAQUE_MARKER = '.wh..wh..opq';
/** The same on disk: an xattr of value `y` on the directory. */
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

/** A deleted name on disk: a character device 0/0. */
export function isWhiteout(st: Pick<Stats, 'mode' | 'rdev'>): boolean {
  return (st.mode & 0o170000) === 0o020000 && st.rdev === 0;
}

export function isOpaqueDir(hostPath: HostPath): boolean {
  const v = getXattr(hostPath, OVERLAY_OPAQUE_XATTR);
  return v !== undefined && v.toString() === 'y';
}
