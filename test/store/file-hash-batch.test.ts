// Small files' digests from native batches (src/store/file-hash-batch.ts and
// native/files/hashfiles.c) are Node's sha256 of each file, in order, whatever the batching;
// a file that is gone fails with its name; a batch of a few small files is hashed inline, and so
// is everything without the library, alike.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashSmallFile } from '../../src/store/file-hash-batch.js';
import { nativeFiles } from '../../src/util/native-files.js';
import { tempDir } from '../helpers/tmp.js';
import { runProgram } from '../helpers/kiln.js';
import { repoRoot } from '../helpers/paths.js';

async function files(n: number): Promise<string[]> {
  const dir = await tempDir('kiln-hashbatch-');
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = join(dir, `f${i}`);
    // Empty, one byte, around the 64 KB read buffer, and up to just under a megabyte.
    const size = [0, 1, 65_535, 65_536, 65_537, (1 << 20) - 1][i % 6]! + (i % 6 === 0 ? 0 : i);
    await writeFile(p, randomBytes(Math.min(size, (1 << 20) - 1)));
    out.push(p);
  }
  return out;
}

/** hashSmallFile as a content key calls it: with the size the walk found. */
async function hashed(p: string): Promise<string> {
  return hashSmallFile(p, (await stat(p)).size);
}

async function nodeDigest(p: string): Promise<string> {
  return `sha256:${createHash('sha256').update(await readFile(p)).digest('hex')}`;
}

test('batched digests are each file\'s sha256, across several batches', async () => {
  assert.ok(nativeFiles(), 'native/build/libkiln-files.so is built with the helper');
  const paths = await files(600);
  const sizes = await Promise.all(paths.map(async (p) => (await stat(p)).size));
  const got = await Promise.all(paths.map((p, i) => hashSmallFile(p, sizes[i]!)));
  for (let i = 0; i < paths.length; i += 37) assert.equal(got[i], await nodeDigest(paths[i]!), paths[i]);
  assert.equal(got[599], await nodeDigest(paths[599]!));
});

test('a batch of a few small files: the same digests', async () => {
  const paths = (await files(3)).slice(0, 2); // empty and one byte: hashed inline
  assert.deepEqual(await Promise.all(paths.map(hashed)), await Promise.all(paths.map(nodeDigest)));
});

test('a file that is gone fails, naming it, in a native batch or inline', async () => {
  const gone = join(await tempDir('kiln-hashbatch-'), 'gone');
  for (const others of [await files(12), await files(1)]) {
    const sizes = await Promise.all(others.map(async (p) => (await stat(p)).size));
    const results = await Promise.allSettled([...others.map((p, i) => hashSmallFile(p, sizes[i]!)), hashSmallFile(gone, 10)]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.ok(failed, 'a missing file hashed');
    assert.match(String((failed.reason as Error).message), new RegExp(`${gone}.*no such file or directory|no such file or directory.*${gone}`, 'i'));
  }
});

test('without the library, the same digests inline', async () => {
  const paths = await files(12);
  const script = `import { hashSmallFile } from ${JSON.stringify(join(repoRoot, 'dist/src/store/file-hash-batch.js'))};
const paths = JSON.parse(process.argv[1]);
console.log(JSON.stringify(await Promise.all(paths.map((p) => hashSmallFile(p, 1 << 20)))));`;
  const r = await runProgram(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(paths)], { env: { KILN_NATIVE_FILES: '/nonexistent/libkiln-files.so' } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), await Promise.all(paths.map(nodeDigest)));
});
