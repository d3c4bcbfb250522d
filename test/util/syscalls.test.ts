// The host calls whose failures kiln tells apart by errno: each failure carries the call's own
// errno, returned by kiln's native library rather than read from the thread afterwards.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { renameIntoPlace } from '../../src/util/fs.js';
import { flock, getXattr, listXattrs, LOCK_EX, LOCK_NB, LOCK_UN, makeWhiteout, removeXattr, setXattr, SyscallError } from '../../src/util/syscalls.js';

test('xattrs, mknod and flock: the expected failures are answers, the others errors naming the call and errno', async () => {
  const d = await tempDir();
  const f = join(d, 'f');
  writeFileSync(f, 'x');
  assert.equal(getXattr(f, 'user.kiln.none'), undefined);
  removeXattr(f, 'user.kiln.none');
  setXattr(f, 'user.kiln.a', Buffer.from('value'));
  assert.deepEqual(listXattrs(f), ['user.kiln.a']);
  assert.equal(getXattr(f, 'user.kiln.a')!.toString(), 'value');
  removeXattr(f, 'user.kiln.a');
  assert.deepEqual(listXattrs(f), []);

  const missing = join(d, 'missing');
  for (const call of [() => getXattr(missing, 'user.x'), () => listXattrs(missing), () => setXattr(missing, 'user.x', Buffer.alloc(1))]) {
    assert.throws(call, (e: unknown) => e instanceof SyscallError && e.code === 'ENOENT' && e.message.includes(missing));
  }
  assert.throws(() => makeWhiteout(f), (e: unknown) => e instanceof SyscallError && e.syscall === 'mknod' && e.code === 'EEXIST');

  // flock belongs to the open file: a second open of the same file is another holder.
  const a = openSync(f, 'r');
  const b = openSync(f, 'r');
  try {
    assert.equal(flock(a, LOCK_EX | LOCK_NB), true);
    assert.equal(flock(b, LOCK_EX | LOCK_NB), false);
    flock(a, LOCK_UN);
    assert.equal(flock(b, LOCK_EX | LOCK_NB), true);
  } finally {
    closeSync(a);
    closeSync(b);
  }
  assert.throws(() => flock(a, LOCK_EX), (e: unknown) => e instanceof SyscallError && e.code === 'EBADF');
});

test('renameIntoPlace keeps a folder already in place, even an empty one a plain rename would replace', async () => {
  const d = await tempDir();
  const dest = join(d, 'dest');
  const first = join(d, 'first');
  const second = join(d, 'second');
  mkdirSync(first);
  mkdirSync(second);
  writeFileSync(join(second, 'marker'), '');
  mkdirSync(join(d, 'third'));
  assert.equal(await renameIntoPlace(first, dest), true);
  const inode = statSync(dest).ino;
  // `dest` is empty: rename(2) would swap `third` in and delete the folder a step may be using.
  assert.equal(await renameIntoPlace(join(d, 'third'), dest), false);
  assert.equal(await renameIntoPlace(second, dest), false);
  assert.equal(statSync(dest).ino, inode);
  assert.deepEqual(readdirSync(dest), []);
  assert.ok(existsSync(join(d, 'third')) && existsSync(join(second, 'marker')), 'the losers are left where they were');
  await assert.rejects(renameIntoPlace(join(d, 'missing'), join(d, 'x')), (e: unknown) => e instanceof SyscallError && e.code === 'ENOENT');
});
