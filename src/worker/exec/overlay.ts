// overlayfs mount options for a stack of layers.

import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError } from '../../util/errors.js';

/**
 * `lowers` top first. Without upper/work the mount is read-only. redirect_dir, index and
 * metacopy stay off: with them, the upperdir would hold redirects and metadata-only copies
 * that a layer read from the upperdir alone cannot express.
 */
export function overlayOptions(lowers: string[], upper?: string, work?: string): string {
  const parts = [`lowerdir=${lowers.map(escapeLower).join(':')}`];
  if (upper && work) parts.push(`upperdir=${escape(upper)}`, `workdir=${escape(work)}`);
  parts.push('redirect_dir=off', 'index=off', 'metacopy=off');
  // volatile: no sync of the whole upper filesystem when the step's namespace unmounts the
  // overlay (the upperdir is renamed into the store, never mounted again).
  if (upper && work) parts.push('volatile');
  return parts.join(',');
}

// The kernel splits options at `,` and lowerdir at `:`; both may be escaped with a backslash.
function escape(p: string): string {
  return p.replace(/[\\,]/g, (c) => `\\${c}`);
}
function escapeLower(p: string): string {
  return p.replace(/[\\,:]/g, (c) => `\\${c}`);
}

/** The kernel takes at most a page of mount options; deep stacks go through short links. */
const MAX_OPTIONS = 4000;

export interface OverlayMountSpec {
  /** The folder relative lowerdir paths are resolved from. */
  cwd: string;
  data: string;
}

export async function overlayMountSpec(lowers: string[], upper: string | undefined, work: string | undefined, linkDir: string): Promise<OverlayMountSpec> {
  const data = overlayOptions(lowers, upper, work);
  if (data.length <= MAX_OPTIONS) return { cwd: '/', data };
  await mkdir(linkDir, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < lowers.length; i++) {
    const name = i.toString(36);
    await symlink(lowers[i]!, join(linkDir, name));
    names.push(name);
  }
  const short = overlayOptions(names, upper, work);
  if (short.length > MAX_OPTIONS) throw new KilnError(`too many layers (${lowers.length}) for one overlay mount`);
  return { cwd: linkDir, data: short };
}
