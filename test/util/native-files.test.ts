// native/build/libkiln-files.so is used only when it speaks this code's job format: a library
// left from another checkout is refused (and kiln copies and hashes in JavaScript).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { runProgram } from '../helpers/kiln.js';
import { repoRoot } from '../helpers/paths.js';

async function loads(library: string | undefined): Promise<boolean> {
  const script = `import { nativeFiles } from ${JSON.stringify(join(repoRoot, 'dist/src/util/native-files.js'))};
console.log(nativeFiles() !== null);`;
  const r = await runProgram(process.execPath, ['--input-type=module', '-e', script], { env: library ? { KILN_NATIVE_FILES: library } : {} });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim() === 'true';
}

test('the built library loads; one of another version does not', async () => {
  assert.equal(await loads(undefined), true);
  const dir = await tempDir('kiln-native-');
  const c = join(dir, 'old.c');
  await writeFile(c, 'int kiln_files_version(void) { return 99; }\nint kiln_copy_files(void) { return 0; }\nint kiln_hash_files(void) { return 0; }\n');
  execFileSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'libold.so'), c]);
  assert.equal(await loads(join(dir, 'libold.so')), false);
});
