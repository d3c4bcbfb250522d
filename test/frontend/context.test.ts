import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { runKiln } from '../helpers/kiln.js';
import { listContext } from '../../src/frontend/context.js';

async function makeTree(root: string, files: string[]): Promise<void> {
  for (const f of files) {
    await mkdir(join(root, f, '..'), { recursive: true });
    await writeFile(join(root, f), f);
  }
}

test('listContext: ignore rules, re-includes bring parent dirs, sorted', async () => {
  const d = await tempDir();
  await makeTree(d, ['Dockerfile', 'a.txt', 'src/main.c', 'src/gen/x.o', 'node_modules/m/index.js', 'docs/README.md', 'docs/other.md']);
  await symlink('a.txt', join(d, 'link'));
  const got = await listContext(d, ['node_modules', '**/*.o', 'docs', '!docs/README.md']);
  assert.deepEqual(got.map((e) => `${e.path}:${e.type}`), [
    'Dockerfile:file', 'a.txt:file', 'docs:dir', 'docs/README.md:file', 'link:symlink', 'src:dir', 'src/gen:dir', 'src/main.c:file',
  ]);
  assert.equal(got.find((e) => e.path === 'a.txt')!.stat.size, 5);
  assert.deepEqual((await listContext(d, [])).length, 13);
});

test('kiln context ls: Dockerfile-specific ignore file wins over .dockerignore', async () => {
  const d = await tempDir();
  await makeTree(d, ['Dockerfile', 'build.Dockerfile', 'keep', 'secret.key', 'tmp/t']);
  await writeFile(join(d, '.dockerignore'), '# comment\n*.key\n/tmp\n');
  await writeFile(join(d, 'build.Dockerfile.dockerignore'), 'keep\n');
  let r = await runKiln(['context', 'ls', d]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '.dockerignore\nDockerfile\nbuild.Dockerfile\nbuild.Dockerfile.dockerignore\nkeep\n');
  r = await runKiln(['context', 'ls', '-f', join(d, 'build.Dockerfile'), d]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '.dockerignore\nDockerfile\nbuild.Dockerfile\nbuild.Dockerfile.dockerignore\nsecret.key\ntmp\ntmp/t\n');
  await writeFile(join(d, '.dockerignore'), '[\n');
  r = await runKiln(['context', 'ls', d]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /\.dockerignore: syntax error in pattern/);
});

test('listContext: wildcard re-includes inside excluded folders are found, literal ones prune', async () => {
  const d = await tempDir();
  await makeTree(d, ['a/x.txt', 'a/b/keep.txt', 'a/b/drop.txt', 'c/keep.txt', 'c/other']);
  const got = await listContext(d, ['a', 'c', '!**/keep.txt']);
  assert.deepEqual(got.map((e) => e.path), ['a', 'a/b', 'a/b/keep.txt', 'c', 'c/keep.txt']);
  const literal = await listContext(d, ['a', 'c', '!c/keep.txt']);
  assert.deepEqual(literal.map((e) => e.path), ['c', 'c/keep.txt']);
});
