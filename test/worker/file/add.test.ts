// ADD: local archives extracted (recognised by content, in every supported compression),
// --unpack=false, evil archives refused with nothing written outside, and http downloads from a
// server on loopback with --checksum verified.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync } from 'node:fs';
import { mkdir, open, writeFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import tar from 'tar-stream';
import type { ResolvedInput } from '../../../src/worker/types.js';
import type { Digest } from '../../../src/graph/ops.js';
import { sha256 } from '../../../src/util/digest.js';
import { fileOpContentKey, runFile } from '../../../src/worker/file/index.js';
import { tempDir } from '../../helpers/tmp.js';
import { openTestStore, makeSnapshot, runAndList, copyAction, fileOp, testCtx, F, D, L } from './helpers.js';
import { RootfsView } from '../../../src/store/rootfs-view.js';
import { headerChecksum } from '../../../src/util/tar/header.js';
import { getXattr } from '../../../src/util/syscalls.js';
import { entry } from '../../helpers/tar-blocks.js';
import { encodePax } from '../../../src/util/tar/pax.js';

const store = await openTestStore();
const base = await makeSnapshot(store, { 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n', 'etc/group': 'root:x:0:\n' });

/** A context holding `payload/` (a dir, a file, a symlink) archived in every format. */
async function archiveContext(): Promise<string> {
  const dir = await tempDir('kiln-addctx-');
  const payload = join(dir, 'src');
  await mkdir(join(payload, 'pkg', 'bin'), { recursive: true });
  await writeFile(join(payload, 'pkg', 'bin', 'tool'), '#!/bin/sh\n', { mode: 0o755 });
  await writeFile(join(payload, 'pkg', 'README'), 'read me');
  execFileSync('ln', ['-s', 'bin/tool', join(payload, 'pkg', 'tool')]);
  const tarArgs = ['--owner=0', '--group=0', '--numeric-owner', '-C', payload];
  execFileSync('tar', ['-cf', join(dir, 'plain.tar'), ...tarArgs, 'pkg']);
  // Old (v7) headers, without the ustar magic: Docker's extractor takes them.
  execFileSync('tar', ['--format=v7', '-cf', join(dir, 'v7.tar'), ...tarArgs, 'pkg']);
  execFileSync('tar', ['-czf', join(dir, 'archive.tgz'), ...tarArgs, 'pkg']);
  execFileSync('tar', ['-cjf', join(dir, 'archive.tar.bz2'), ...tarArgs, 'pkg']);
  execFileSync('tar', ['-cJf', join(dir, 'archive.tar.xz'), ...tarArgs, 'pkg']);
  execFileSync('tar', ['--zstd', '-cf', join(dir, 'archive.tar.zst'), ...tarArgs, 'pkg']);
  // Same gzip bytes under a name that does not say so: detection is by content.
  execFileSync('cp', [join(dir, 'archive.tgz'), join(dir, 'no-extension')]);
  await writeFile(join(dir, 'notes.tar.gz'), 'not really an archive');
  execFileSync('rm', ['-r', payload]);
  return dir;
}

const ctxDir = await archiveContext();
const inputs: ResolvedInput[] = [{ kind: 'state', layers: [base] }, { kind: 'context', dir: ctxDir, excludePatterns: [] }];
const extracted = {
  opt: D(),
  'opt/pkg': D(),
  'opt/pkg/README': F('read me'),
  'opt/pkg/bin': D(),
  'opt/pkg/bin/tool': F('#!/bin/sh\n', '0755'),
  'opt/pkg/tool': L('bin/tool'),
};

for (const name of ['plain.tar', 'v7.tar', 'archive.tgz', 'archive.tar.bz2', 'archive.tar.xz', 'archive.tar.zst', 'no-extension']) {
  test(`ADD extracts ${name}`, async () => {
    assert.deepEqual(await runAndList(store, fileOp(copyAction({ src: [name], dest: '/opt/', add: true })), inputs), extracted);
  });
}

test('ADD --unpack=false copies the archive as a file', async () => {
  const out = await runAndList(store, fileOp(copyAction({ src: ['archive.tgz'], dest: '/opt/', add: true, unpack: false })), inputs);
  assert.deepEqual(Object.keys(out!), ['opt', 'opt/archive.tgz']);
});

test('ADD --chmod leaves an archive\'s modes, and the folder made for it, alone, as BuildKit unpacks; a plain file beside it takes the mode', async () => {
  const out = await runAndList(store, fileOp(copyAction({ src: ['plain.tar', 'notes.tar.gz'], dest: '/opt/', add: true, chmod: '0700' })), inputs);
  assert.deepEqual(out, { ...extracted, 'opt/notes.tar.gz': F('not really an archive', '0700') });
});

test('COPY never extracts; ADD of a non-archive with an archive name copies it', async () => {
  const copied = await runAndList(store, fileOp(copyAction({ src: ['plain.tar'], dest: '/opt/' })), inputs);
  assert.deepEqual(Object.keys(copied!), ['opt', 'opt/plain.tar']);
  const notes = await runAndList(store, fileOp(copyAction({ src: ['notes.tar.gz'], dest: '/opt/', add: true })), inputs);
  assert.deepEqual(notes, { opt: D(), 'opt/notes.tar.gz': F('not really an archive') });
});

test('ADD: a folder the archive names takes its entry\'s owner and mode where the image has it; parents it only implies keep theirs', async () => {
  const dir = await tempDir('kiln-addmerge-');
  await mkdir(join(dir, 'src', 'srv'), { recursive: true });
  await writeFile(join(dir, 'src', 'srv', 'new'), 'n');
  execFileSync('chmod', ['0750', join(dir, 'src', 'srv')]);
  execFileSync('tar', ['-cf', join(dir, 'named.tar'), '--owner=3', '--group=4', '--numeric-owner', '-C', join(dir, 'src'), 'srv']);
  execFileSync('tar', ['-cf', join(dir, 'implied.tar'), '--owner=3', '--group=4', '--numeric-owner', '-C', join(dir, 'src'), 'srv/new']);
  const lower = await makeSnapshot(store, { 'srv/old': 'o', 'srv/': { dir: true, mode: 0o1777, uid: 9, gid: 9, mtime: 1000 } });
  const addInputs: ResolvedInput[] = [{ kind: 'state', layers: [lower] }, { kind: 'context', dir, excludePatterns: [] }];
  const named = await runAndList(store, fileOp(copyAction({ src: ['named.tar'], dest: '/', add: true })), addInputs);
  assert.deepEqual(named, { srv: D('0750', '3:4'), 'srv/new': F('n', '0644', '3:4') });
  const implied = await runAndList(store, fileOp(copyAction({ src: ['implied.tar'], dest: '/', add: true })), addInputs);
  assert.deepEqual(implied, { srv: D('1777', '9:9', 1000), 'srv/new': F('n', '0644', '3:4') });
  // Two archives in one ADD: the second's entry for a folder the first made wins, as in Docker.
  const both = await runAndList(store, fileOp(copyAction({ src: ['named.tar', 'implied.tar'], dest: '/x/', add: true, chown: { user: '5' } })), addInputs);
  assert.equal(both!['x/srv']!.owner, '5:5');
});

test('ADD onto a symbolic link to a folder (merged /usr): an implied folder is followed, a named one replaces the link, as in Docker', async () => {
  const dir = await tempDir('kiln-addlink-');
  await mkdir(join(dir, 'src', 'lib'), { recursive: true });
  await writeFile(join(dir, 'src', 'lib', 'x'), 'x');
  await writeFile(join(dir, 'src', 'file'), 'f');
  execFileSync('tar', ['-cf', join(dir, 'implied.tar'), '--owner=0', '--group=0', '--numeric-owner', '-C', join(dir, 'src'), 'lib/x']);
  execFileSync('tar', ['-cf', join(dir, 'named.tar'), '--owner=0', '--group=0', '--numeric-owner', '-C', join(dir, 'src'), 'lib']);
  execFileSync('tar', ['-cf', join(dir, 'intofile.tar'), '--owner=0', '--group=0', '--numeric-owner', '-C', join(dir, 'src'), '--transform', 's,^lib/,file/,', 'lib/x']);
  const lower = await makeSnapshot(store, { 'usr/lib/keep': 'k', lib: '->usr/lib' });
  const addInputs: ResolvedInput[] = [{ kind: 'state', layers: [lower] }, { kind: 'context', dir, excludePatterns: [] }];
  const followed = await runAndList(store, fileOp(copyAction({ src: ['implied.tar'], dest: '/', add: true })), addInputs);
  assert.deepEqual(Object.keys(followed!).sort(), ['usr', 'usr/lib', 'usr/lib/x']);
  assert.equal(followed!['usr/lib/x']!.content, 'x');
  const replaced = await runAndList(store, fileOp(copyAction({ src: ['named.tar'], dest: '/', add: true })), addInputs);
  assert.deepEqual(replaced, { lib: D('0755', '0:0', replaced!['lib']!.mtime), 'lib/x': F('x', '0644', '0:0', replaced!['lib/x']!.mtime) });
  const toFile = runAndList(store, fileOp(copyAction({ src: ['intofile.tar'], dest: '/', add: true })), [
    { kind: 'state', layers: [await makeSnapshot(store, { 'usr/lib/keep': 'k', file: '->usr/lib/keep' })] },
    { kind: 'context', dir, excludePatterns: [] },
  ]);
  await assert.rejects(toFile, /cannot extract into \/file: a symbolic link to \/usr\/lib\/keep, which is not a directory/);
});

test('ADD: an archive\'s file replaces a folder of that name, the image\'s or one an earlier archive made, as in Docker', async () => {
  const dir = await tempDir('kiln-addoverdir-');
  await mkdir(join(dir, 'a', 'item'), { recursive: true });
  await writeFile(join(dir, 'a', 'item', 'inner'), 'i');
  await mkdir(join(dir, 'b'));
  await writeFile(join(dir, 'b', 'item'), 'file now');
  execFileSync('tar', ['-cf', join(dir, 'folder.tar'), '--owner=0', '--group=0', '--numeric-owner', '-C', join(dir, 'a'), 'item']);
  execFileSync('tar', ['-cf', join(dir, 'file.tar'), '--owner=0', '--group=0', '--numeric-owner', '-C', join(dir, 'b'), 'item']);
  const lower = await makeSnapshot(store, { 't/item/old': 'o' });
  const addInputs: ResolvedInput[] = [{ kind: 'state', layers: [lower] }, { kind: 'context', dir, excludePatterns: [] }];
  const overImage = await runAndList(store, fileOp(copyAction({ src: ['file.tar'], dest: '/t/', add: true })), addInputs);
  assert.deepEqual(Object.keys(overImage!).sort(), ['t', 't/item']);
  assert.equal(overImage!['t/item']!.content, 'file now');
  const overOwn = await runAndList(store, fileOp(copyAction({ src: ['folder.tar', 'file.tar'], dest: '/n/', add: true })), addInputs);
  assert.deepEqual(Object.keys(overOwn!).sort(), ['n', 'n/item']);
  assert.equal(overOwn!['n/item']!.content, 'file now');
});

test('ADD of a layer-like archive: its whiteouts delete from the image, its opaque marker hides the folder\'s old contents', async () => {
  const dir = await tempDir('kiln-addwh-');
  const layer = tar.pack();
  const chunks: Buffer[] = [];
  layer.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((res) => layer.on('end', () => res()));
  layer.entry({ name: 'd/.wh.gone', mode: 0o644 }, '');
  layer.entry({ name: 'lib/.wh.old', mode: 0o644 }, '');
  layer.entry({ name: 'o/', type: 'directory', mode: 0o755 });
  layer.entry({ name: 'o/.wh..wh..opq', mode: 0o644 }, '');
  layer.entry({ name: 'o/new', mode: 0o644 }, 'n');
  layer.entry({ name: 'back', mode: 0o644 }, 'again');
  layer.entry({ name: '.wh.back', mode: 0o644 }, '');
  layer.entry({ name: 'kept', mode: 0o644 }, 'kept');
  // Deleted from the image, then given again by the archive: the new file stays.
  layer.entry({ name: '.wh.again', mode: 0o644 }, '');
  layer.entry({ name: 'again', mode: 0o644 }, 'new');
  layer.finalize();
  await done;
  await writeFile(join(dir, 'layer.tar'), Buffer.concat(chunks));
  const lower = await makeSnapshot(store, {
    'd/gone': 'g', 'd/stay': 's', 'usr/lib/old': 'o', lib: '->usr/lib', 'o/x': 'x', 'o/sub/y': 'y', back: 'b', kept: 'k', again: 'old',
  });
  const out = await runFile(fileOp(copyAction({ src: ['layer.tar'], dest: '/', add: true })), [
    { kind: 'state', layers: [lower] }, { kind: 'context', dir, excludePatterns: [] },
  ], testCtx(store), `wh-${Date.now()}`);
  const merged = new RootfsView([store.snapshotFs(lower), store.snapshotFs(out.snapshot!)]);
  const present = async (p: string) => (await merged.lstat(p)) !== undefined;
  assert.deepEqual(
    await Promise.all(['/d/gone', '/d/stay', '/usr/lib/old', '/lib', '/o/x', '/o/sub', '/o/new', '/back', '/kept'].map(async (p) => [p, await present(p)])),
    [['/d/gone', false], ['/d/stay', true], ['/usr/lib/old', false], ['/lib', true], ['/o/x', false], ['/o/sub', false], ['/o/new', true], ['/back', false], ['/kept', true]],
  );
  assert.equal((await merged.readFile('/kept')).toString(), 'kept');
  assert.equal((await merged.readFile('/again')).toString(), 'new');
});

test('ADD moves the extracted files into the layer: hard links stay linked, a file capability survives (its file is copied), owners and modes are the archive\'s', async () => {
  const dir = await tempDir('kiln-addmove-');
  const cap = Buffer.from([1, 0, 0, 2, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((res) => pack.on('end', () => res()));
  pack.entry({ name: 'bin/', type: 'directory', mode: 0o755 });
  pack.entry({ name: 'bin/tool', mode: 0o4750, uid: 7, gid: 8 }, 'tool');
  pack.entry({ name: 'bin/alias', type: 'link', linkname: 'bin/tool' });
  pack.finalize();
  await done;
  // The capability's bytes go in a PAX record made here: tar-stream would encode them as UTF-8.
  const archive = Buffer.concat(chunks);
  const withCap = Buffer.concat([
    archive.subarray(0, 512), // bin/
    entry({ name: 'PaxHeaders/ping', type: 'x' }, encodePax([['SCHILY.xattr.security.capability', cap]])),
    entry({ name: 'bin/ping', type: '0', mode: 0o755 }, 'ping'),
    archive.subarray(512),
  ]);
  await writeFile(join(dir, 'move.tar'), withCap);
  const out = await runFile(fileOp(copyAction({ src: ['move.tar'], dest: '/', add: true })), [
    { kind: 'state', layers: [base] }, { kind: 'context', dir, excludePatterns: [] },
  ], testCtx(store), `move-${Date.now()}`);
  const fs = store.snapshotFs(out.snapshot!);
  const tool = lstatSync(join(fs, 'bin/tool'));
  assert.equal(tool.ino, lstatSync(join(fs, 'bin/alias')).ino, 'hard links stay hard links');
  assert.equal(tool.nlink, 2);
  assert.deepEqual([tool.mode & 0o7777, tool.uid, tool.gid], [0o4750, 7, 8]);
  assert.equal(readFileSync(join(fs, 'bin/tool'), 'utf8'), 'tool');
  assert.deepEqual(getXattr(join(fs, 'bin/ping'), 'security.capability'), cap);
  assert.equal(readFileSync(join(fs, 'bin/ping'), 'utf8'), 'ping');
});

/** A tar archive of regular files made by tar-stream, with its two end blocks. */
async function packed(entries: Array<{ name: string; body: string | Buffer; pax?: Record<string, string> }>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((res) => pack.on('end', () => res()));
  for (const e of entries) pack.entry({ name: e.name, mode: 0o644, mtime: new Date(0), pax: e.pax }, e.body);
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function evilTar(file: string, entries: Array<{ name: string; type?: 'file' | 'symlink'; linkname?: string; body?: string }>): Promise<void> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((res) => pack.on('end', () => res()));
  for (const e of entries) {
    if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname! });
    else pack.entry({ name: e.name, mode: 0o644 }, e.body ?? 'x');
  }
  pack.finalize();
  await done;
  await writeFile(file, Buffer.concat(chunks));
}

test('ADD of a sparse file (tar --sparse --format=posix, maps 0.0, 0.1 and 1.0) gives the file at its real size; GNU\'s own sparse entries are refused, as by Docker', async () => {
  const dir = await tempDir('kiln-sparse-');
  const src = join(dir, 'src');
  await mkdir(src);
  // 1 MiB with two pieces of data, one mid-way and one at the end, written around holes.
  const whole = Buffer.alloc(1 << 20);
  whole.write('middle', 300_000);
  whole.write('end', whole.length - 3);
  const fh = await open(join(src, 'holey'), 'w');
  await fh.write(whole, 300_000, 6, 300_000);
  await fh.write(whole, whole.length - 3, 3, whole.length - 3);
  await fh.close();
  for (const v of ['0.0', '0.1', '1.0']) {
    execFileSync('tar', ['--sparse', '--format=posix', `--sparse-version=${v}`, '--owner=0', '--group=0', '-cf', join(dir, `sparse-${v}.tar`), '-C', src, 'holey']);
    assert.ok((await readFile(join(dir, `sparse-${v}.tar`))).includes('GNU.sparse.'), `tar wrote a sparse entry (${v})`);
  }
  execFileSync('tar', ['--sparse', '--format=gnu', '-cf', join(dir, 'gnu.tar'), '-C', src, 'holey']);
  const ins: ResolvedInput[] = [{ kind: 'state', layers: [base] }, { kind: 'context', dir, excludePatterns: [] }];
  for (const v of ['0.0', '0.1', '1.0']) {
    const listed = await runAndList(store, fileOp(copyAction({ src: [`sparse-${v}.tar`], dest: '/x/', add: true })), ins);
    assert.deepEqual(listed, { x: D(), 'x/holey': F(whole.toString('utf8')) }, `format ${v}`);
  }
  await assert.rejects(runAndList(store, fileOp(copyAction({ src: ['gnu.tar'], dest: '/x/', add: true })), ins), /refusing to extract "holey": an entry of a type that is not extracted/);
});

test('ADD stops at the two zero blocks that end an archive, as Docker does: what follows them is ignored; a header after a single zero block is refused', async () => {
  const dir = await tempDir('kiln-tarend-');
  const plain = await readFile(join(ctxDir, 'plain.tar'));
  const other = await packed([{ name: 'other', body: 'second archive' }]);
  const zeros = (blocks: number) => Buffer.alloc(512 * blocks);
  const small = await packed([{ name: 'only', body: 'first' }]);
  await writeFile(join(dir, 'appended.tar'), Buffer.concat([plain, other]));
  await writeFile(join(dir, 'garbage.tar'), Buffer.concat([plain, Buffer.from('garbage after the end\n')]));
  await writeFile(join(dir, 'garbage-block.tar'), Buffer.concat([small, Buffer.alloc(512, 'x')]));
  await writeFile(join(dir, 'one-zero.tar'), Buffer.concat([small.subarray(0, small.length - 1024), zeros(1), other]));
  await writeFile(join(dir, 'no-end.tar'), small.subarray(0, small.length - 1024));
  execFileSync('sh', ['-c', 'cat "$1" "$2" | gzip > "$3"', 'sh', join(ctxDir, 'plain.tar'), join(dir, 'garbage.tar'), join(dir, 'appended.tgz')]);
  // A PAX `size` decides where the body ends: here the header says 0 and the body is 1024 zero
  // bytes, which read as headers would be taken for the end, losing the entry after them.
  const paxSized = await packed([{ name: 'zeros', body: zeros(2), pax: { size: '1024' } }, { name: 'after', body: 'after the zeros' }]);
  const zerosHeader = 1024; // after the PAX header and its one-block body
  assert.equal(paxSized.toString('latin1', zerosHeader + 156, zerosHeader + 157), '0');
  paxSized.write('00000000000\0', zerosHeader + 124, 'ascii');
  paxSized.write(`${headerChecksum(paxSized.subarray(zerosHeader, zerosHeader + 512)).toString(8).padStart(6, '0')}\0 `, zerosHeader + 148, 'ascii');
  await writeFile(join(dir, 'pax-size.tar'), paxSized);
  const ins: ResolvedInput[] = [{ kind: 'state', layers: [base] }, { kind: 'context', dir, excludePatterns: [] }];
  const add = (src: string) => runAndList(store, fileOp(copyAction({ src: [src], dest: '/opt/', add: true })), ins);
  for (const name of ['appended.tar', 'garbage.tar', 'appended.tgz']) assert.deepEqual(await add(name), extracted, name);
  assert.deepEqual(await add('garbage-block.tar'), { opt: D(), 'opt/only': F('first') });
  assert.deepEqual(await add('no-end.tar'), { opt: D(), 'opt/only': F('first') });
  assert.deepEqual(await add('pax-size.tar'), { opt: D(), 'opt/zeros': F(zeros(2).toString('utf8')), 'opt/after': F('after the zeros') });
  await assert.rejects(add('one-zero.tar'), /one-zero\.tar.*a header at byte 1536 follows a single zero block/);
});

test('evil archives are refused and nothing lands outside', async () => {
  const dir = await tempDir('kiln-evil-');
  const outside = await tempDir('kiln-outside-');
  await evilTar(join(dir, 'slip.tar'), [{ name: `../../../../../../../../..${outside}/pwned` }]);
  await evilTar(join(dir, 'abs-parent.tar'), [
    { name: 'link', type: 'symlink', linkname: outside },
    { name: 'link/pwned' },
  ]);
  await evilTar(join(dir, 'rel-escape.tar'), [{ name: 'up', type: 'symlink', linkname: '../../../../../../../../../..' + outside }]);
  const evilInputs: ResolvedInput[] = [{ kind: 'state', layers: [base] }, { kind: 'context', dir, excludePatterns: [] }];
  const tmpBefore = await readdir(store.path('tmp'));
  for (const name of ['slip.tar', 'abs-parent.tar', 'rel-escape.tar']) {
    await assert.rejects(runAndList(store, fileOp(copyAction({ src: [name], dest: '/x/', add: true })), evilInputs), /refusing to extract/, name);
  }
  assert.deepEqual(await readdir(outside), []);
  assert.deepEqual(await readdir(store.path('tmp')), tmpBefore);
});

// ------------------------------------------------------------------ URLs

const served = new Map<string, Buffer>([
  ['/files/tool.sh', Buffer.from('echo tool\n')],
  ['/dl/pkg.tgz', await readFile(join(ctxDir, 'archive.tgz'))],
  ['/', Buffer.from('index\n')],
]);
let hits = 0;
const server: Server = createServer((req, res) => {
  hits++;
  const body = served.get(req.url ?? '');
  if (!body) {
    res.writeHead(404).end('no');
    return;
  }
  res.writeHead(200, { 'content-length': body.length }).end(body);
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
after(() => server.close());
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

test('ADD of a URL into a dir/ takes the name from the URL, mode 0600', async () => {
  const op = fileOp({ action: 'download', url: `${origin}/files/tool.sh`, dest: '/usr/local/bin/' });
  assert.deepEqual(await runAndList(store, op, inputs), {
    usr: D(), 'usr/local': D(), 'usr/local/bin': D(), 'usr/local/bin/tool.sh': F('echo tool\n', '0600'),
  });
});

test('ADD of a URL whose path names no file: BuildKit\'s __unnamed__', async () => {
  const op = fileOp({ action: 'download', url: `${origin}/`, dest: '/www/' });
  assert.deepEqual(await runAndList(store, op, inputs), { www: D(), 'www/__unnamed__': F('index\n', '0600') });
});

test('ADD of a URL to a file name, with --chmod and a verified --checksum', async () => {
  const checksum = sha256('echo tool\n');
  const op = fileOp({ action: 'download', url: `${origin}/files/tool.sh`, dest: '/t', checksum, chmod: '0755' });
  assert.deepEqual(await runAndList(store, op, inputs), { t: F('echo tool\n', '0755') });
  assert.equal(await fileOpContentKey(op, inputs, testCtx(store)), await fileOpContentKey(op, inputs, testCtx(store)));
});

test('ADD --checksum mismatch is an error naming both digests', async () => {
  const wrong = sha256('something else') as Digest;
  const fresh = await openTestStore();
  const op = fileOp({ action: 'download', url: `${origin}/files/tool.sh`, dest: '/t', checksum: wrong });
  await assert.rejects(runAndList(fresh, op, [{ kind: 'state', layers: [] }]), (err: Error) => {
    assert.match(err.message, new RegExp(`checksum mismatch: --checksum is ${wrong} but the download is ${sha256('echo tool\n')}`));
    return true;
  });
});

test('ADD of a URL that is not there names the status', async () => {
  const op = fileOp({ action: 'download', url: `${origin}/missing.txt`, dest: '/m' });
  await assert.rejects(runAndList(store, op, inputs), /HTTP 404/);
});

test('a URL archive is not extracted unless --unpack=true', async () => {
  const plain = await runAndList(store, fileOp({ action: 'download', url: `${origin}/dl/pkg.tgz`, dest: '/opt/' }), inputs);
  assert.deepEqual(Object.keys(plain!), ['opt', 'opt/pkg.tgz']);
  const unpacked = await runAndList(store, fileOp({ action: 'download', url: `${origin}/dl/pkg.tgz`, dest: '/opt/', unpack: true }), inputs);
  assert.deepEqual(unpacked, extracted);
  // As a local archive: --chmod leaves its modes alone.
  const chmodded = await runAndList(store, fileOp({ action: 'download', url: `${origin}/dl/pkg.tgz`, dest: '/opt/', unpack: true, chmod: '0700' }), inputs);
  assert.deepEqual(chmodded, extracted);
});

test('without --checksum the key follows the downloaded content', async () => {
  const fresh = await openTestStore();
  const op = fileOp({ action: 'download', url: `${origin}/files/tool.sh`, dest: '/t' });
  const k1 = await fileOpContentKey(op, [{ kind: 'state', layers: [] }], testCtx(fresh));
  assert.ok(hits > 0);
  served.set('/files/tool.sh', Buffer.from('echo tool v2\n'));
  const other = await openTestStore();
  const k2 = await fileOpContentKey(op, [{ kind: 'state', layers: [] }], testCtx(other));
  assert.notEqual(k1, k2);
  served.set('/files/tool.sh', Buffer.from('echo tool\n'));
});
