// Where kiln is installed. Compiled modules (dist/src/...) and the one-file bundle
// (dist/kiln.mjs) sit at different depths, so files that ship beside the code (package.json,
// native/build, the default store) are found by walking up to kiln's package.json.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return (root = dir);
    if (dirname(dir) === dir) throw new Error(`kiln's package folder not found above ${start}`);
  }
}
