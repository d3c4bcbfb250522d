// RootfsView: lookups across overlay-format layers without mounting, symlinks resolved inside
// the root (never on the host), whiteouts and opaque directories honoured.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { RootfsView } from '../../../src/store/rootfs-view.js';
import { makeWhiteout, setXattr } from '../../../src/util/syscalls.js';
import { tempDir } from '../../helpers/tmp.js';
import { writeTree } from './helpers.js';

const lower = await tempDir('kiln-view-lower-');
const upper = await tempDir('kiln-view-upper-');
await writeTree(lower, {
  'etc/passwd': 'lower passwd',
  'etc/hosts': 'hosts',
  'usr/bin/tool': 'tool',
  'opaque/old': 'old',
  'gone/inner': 'i',
  'file-then-dir': 'f',
  'bin': '->usr/bin',
  'abs': '->/etc',
  'up': '->../../../../../..',
  'loop1': '->loop2',
  'loop2': '->loop1',
});
await writeTree(upper, { 'etc/passwd': 'upper passwd', 'etc/new': 'n', 'file-then-dir/x': 'x' });
makeWhiteout(join(upper, 'gone'));
makeWhiteout(join(upper, 'etc', 'hosts'));
await mkdir(join(upper, 'opaque'));
setXattr(join(upper, 'opaque'), 'trusted.overlay.opaque', Buffer.from('y'));
await writeFile(join(upper, 'opaque', 'fresh'), 'fresh');
await symlink('/etc/passwd', join(upper, 'pw'));

const view = new RootfsView([lower, upper]);

test('upper files hide lower ones; whiteouts hide entries; a dir over a file is a dir', async () => {
  assert.equal((await view.readFile('/etc/passwd')).toString(), 'upper passwd');
  assert.equal(await view.lstat('/etc/hosts'), undefined);
  assert.equal(await view.lstat('/gone'), undefined);
  assert.equal(await view.lstat('/gone/inner'), undefined);
  assert.equal((await view.lstat('/file-then-dir'))?.type, 'dir');
});

test('readdir merges layers, skips whiteouts and stops at opaque directories', async () => {
  const names = async (p: string) => (await view.readdir((await view.stat(p))!)).map((e) => e.path);
  assert.deepEqual(await names('/etc'), ['/etc/new', '/etc/passwd']);
  assert.deepEqual(await names('/opaque'), ['/opaque/fresh']);
  assert.deepEqual(await names('/'), ['/abs', '/bin', '/etc', '/file-then-dir', '/loop1', '/loop2', '/opaque', '/pw', '/up', '/usr']);
});

test('symlinks resolve component by component inside the root', async () => {
  assert.equal((await view.stat('/bin/tool'))?.path, '/usr/bin/tool');
  assert.equal((await view.readFile('/abs/passwd')).toString(), 'upper passwd');
  // `..` past the root stays at the root: /up/etc is the image's /etc, not the host's.
  assert.equal((await view.stat('/up/etc/new'))?.path, '/etc/new');
  assert.equal((await view.readFile('/pw')).toString(), 'upper passwd');
  assert.equal((await view.lstat('/pw'))?.type, 'symlink');
  assert.equal(await view.stat('/up/tmp'), undefined);
  await assert.rejects(view.locate('/loop1', true), /too many levels of symbolic links/);
  const missing = await view.locate('/bin/not/here', true);
  assert.deepEqual(missing, { path: '/usr/bin/not/here', entry: undefined });
});

test('walk visits everything once, in order, without following links', async () => {
  const seen: string[] = [];
  for await (const e of view.walk((await view.stat('/usr'))!)) seen.push(`${e.path}:${e.type}`);
  assert.deepEqual(seen, ['/usr:dir', '/usr/bin:dir', '/usr/bin/tool:file']);
});

test('an empty layer stack is an empty root directory', async () => {
  const empty = new RootfsView([]);
  const root = await empty.root();
  assert.equal(root.type, 'dir');
  assert.deepEqual(await empty.readdir(root), []);
  assert.equal(await empty.readFileIfExists('/etc/passwd'), undefined);
});

test('a file name that is not UTF-8 is an error, not a silently dropped file', async () => {
  const dir = await tempDir('kiln-view-bytes-');
  await writeFile(Buffer.concat([Buffer.from(dir + '/bad'), Buffer.from([0xff])]), 'x');
  const v = new RootfsView([dir]);
  await assert.rejects(v.readdir(await v.root()), /not UTF-8/);
});
