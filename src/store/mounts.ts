// Host mount table reading. Nothing in the store is ever deleted while a mount sits below it:
// `rm -r` would walk into the mount and delete what it shows (possibly host files).

import { readFileSync } from 'node:fs';
import { childProcess } from '../util/lazy-modules.js';

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const path = mp.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (path === dir || path.startsWith(prefix)) out.push(path);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Detaches every mount at or below `dir`. Returns the ones that would not go. */
export function unmountAllUnder(dir: string): string[] {
  const stuck: string[] = [];
  for (const mp of mountsUnder(dir)) {
    const r = childProcess().spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
    if (r.status !== 0) stuck.push(mp);
  }
  return stuck;
}
