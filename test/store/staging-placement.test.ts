// The store's staging folder carries ext4's "top directory" flag (chattr +T) once a build has
// staged anything in it, so new trees are spread over block groups (see Store.spreadStaging).
// The flag is set once per tmp/ folder: again for a copy of the store, not on every build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { runProgram } from '../helpers/kiln.js';
import { buildJson, assertOk, writeTree } from '../build/fixture.js';

function hasTopFlag(dir: string): boolean {
  // lsattr -d prints the flags field first, e.g. "-------------Te------- DIR".
  return execFileSync('lsattr', ['-d', dir], { encoding: 'utf8' }).split(' ')[0]!.includes('T');
}

async function filesystemTakesFlag(): Promise<boolean> {
  const probe = join(await tempDir('kiln-topdir-probe-'), 'd');
  mkdirSync(probe);
  try {
    execFileSync('chattr', ['+T', probe], { stdio: 'ignore' });
    return hasTopFlag(probe);
  } catch {
    return false;
  }
}

const supported = await filesystemTakesFlag();

test('a build marks tmp/ as a top directory once, and again in a copied store', { skip: !supported && 'the temporary folder\'s filesystem has no top-directory flag' }, async () => {
  const work = await tempDir('kiln-topdir-');
  const ctx = join(work, 'ctx');
  await writeTree(ctx, { Dockerfile: 'FROM scratch\nCOPY a.txt /a.txt\n', 'a.txt': 'a\n' });
  const root = join(work, 'store');

  assertOk(await buildJson(root, ctx, ['--no-cache']));
  const tmp = join(root, 'tmp');
  assert.ok(hasTopFlag(tmp), 'tmp/ has no +T after a build');
  assert.equal(readFileSync(join(root, 'tmp.topdir'), 'utf8'), String(statSync(tmp).ino));

  // The marker says this tmp/ was done: a later build does not set the flag again.
  execFileSync('chattr', ['-T', tmp]);
  assertOk(await buildJson(root, ctx, ['--no-cache']));
  assert.ok(!hasTopFlag(tmp), 'the flag was set again although the marker names this tmp/');

  // A copy of the store has another tmp/ (cp -a keeps the marker, not the inode): marked again.
  const copy = join(work, 'copy');
  const cp = await runProgram('cp', ['-a', root, copy]);
  assert.equal(cp.code, 0, cp.stderr);
  execFileSync('chattr', ['-T', join(copy, 'tmp')]);
  assertOk(await buildJson(copy, ctx, ['--no-cache']));
  assert.ok(hasTopFlag(join(copy, 'tmp')), 'the copied store\'s tmp/ was not marked');
  assert.equal(readFileSync(join(copy, 'tmp.topdir'), 'utf8'), String(statSync(join(copy, 'tmp')).ino));
});
