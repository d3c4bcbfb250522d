// A bind mount from the build context must show what the context transfer would: the files
// the ignore patterns keep. Rather than copy them, the sandbox mounts a read-only overlay of the
// context folder under a layer of whiteouts, one per ignored path.

import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { listContext } from '../../frontend/context.js';
import { makeWhiteout } from '../../util/syscalls.js';

/** Fills `out` with whiteouts hiding what `patterns` ignore in `contextDir`; false when nothing is ignored. */
export async function writeContextWhiteouts(contextDir: string, patterns: string[], out: string): Promise<boolean> {
  if (patterns.length === 0) return false;
  const kept = new Set((await listContext(contextDir, patterns)).map((e) => e.path));
  let any = false;
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(contextDir, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      if (!kept.has(path)) {
        mkdirSync(join(out, rel), { recursive: true });
        makeWhiteout(join(out, path));
        any = true;
      } else if (lstatSync(join(contextDir, path)).isDirectory()) walk(path);
    }
  };
  walk('');
  return any;
}
