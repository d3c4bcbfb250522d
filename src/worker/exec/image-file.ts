// Reads a small file of the image (/etc/passwd, /etc/group) through its layers. The common
// case, no symlink on the way, is a few synchronous lstat calls (this runs before every RUN);
// anything else goes through the full merged view.

import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RootfsView } from '../../store/rootfs-view.js';
import { isWhiteout, isOpaqueDir } from '../../util/overlay-format.js';

type Found = Buffer | undefined | 'complex';

function fromLayer(layer: string, parts: string[]): Found | 'next' {
  let p = layer;
  for (let i = 0; i < parts.length; i++) {
    p = join(p, parts[i]!);
    const st = lstatSync(p, { throwIfNoEntry: false });
    const last = i === parts.length - 1;
    if (!st) {
      // Missing here: look below, unless an opaque parent hides the layers below.
      return i > 0 && isOpaqueDir(join(layer, ...parts.slice(0, i))) ? undefined : 'next';
    }
    if (isWhiteout(st)) return undefined;
    if (st.isSymbolicLink()) return 'complex';
    if (last) return st.isFile() ? readFileSync(p) : undefined;
    if (!st.isDirectory()) return undefined;
  }
  return 'next';
}

/** `layers`: host folders bottom to top. `path`: absolute, inside the image. */
export async function readImageFile(layers: readonly string[], path: string): Promise<Buffer | undefined> {
  const parts = path.split('/').filter(Boolean);
  for (let i = layers.length - 1; i >= 0; i--) {
    const r = fromLayer(layers[i]!, parts);
    if (r === 'next') continue;
    if (r === 'complex') return new RootfsView(layers).readFileIfExists(path);
    return r;
  }
  return undefined;
}
