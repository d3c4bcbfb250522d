// The image commands end to end through the CLI: import (docker-archive from skopeo and a
// hand-made legacy `docker save` layout, OCI tar and folder), images, inspect, history, tag,
// rmi, export with --iidfile/--metadata-file, and evil archives refused.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { getXattr, setXattr } from '../../src/util/syscalls.js';
import { exportImage, parseOutputSpec } from '../../src/exporter/index.js';
import type { WrittenImage } from '../../src/image/assemble.js';
import tar from 'tar-stream';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { FILE_TEXT, makeTestImage } from './fixture.js';
import { diffTrees, readTree } from './tree.js';

const work = await tempDir();
let img: WrittenImage;
const ociTar = join(work, 'src-oci.tar');
const skopeoDocker = join(work, 'skopeo-docker.tar');

before(async () => {
  const store = await Store.open(join(work, 'build-store'));
  img = await makeTestImage(store);
  await exportImage(store, img.manifestDigest, parseOutputSpec(`type=oci,dest=${ociTar},name=kiln.test/demo:v1`));
  // A docker-archive written by containers/image, not by kiln.
  execFileSync('skopeo', ['copy', '-q', `oci-archive:${ociTar}`, `docker-archive:${skopeoDocker}:example.com/team/app:2.0`]);
});

const kiln = (root: string, ...args: string[]) => runKiln([...args, '--root', root]);

test('import a docker-archive written by skopeo; images, inspect, history, tag, rmi', async () => {
  const root = join(work, 'store-a');
  const imp = await kiln(root, 'import', skopeoDocker);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, /Loaded image: example\.com\/team\/app:2\.0/);

  const images = await kiln(root, 'images');
  assert.equal(images.code, 0, images.stderr);
  assert.match(images.stdout, /^NAME\s+DIGEST\s+IMAGE ID\s+SIZE\n/);
  assert.match(images.stdout, /example\.com\/team\/app:2\.0\s+[0-9a-f]{12}\s+[0-9a-f]{12}\s+\d/);

  const insp = await kiln(root, 'inspect', 'example.com/team/app:2.0');
  assert.equal(insp.code, 0, insp.stderr);
  const info = JSON.parse(insp.stdout) as { configDigest: string; layers: Array<{ diffId: string }>; config: { Labels: Record<string, string> } };
  assert.equal(info.configDigest, img.configDigest, 'the config survives docker-archive byte for byte');
  assert.deepEqual(info.layers.map((l) => l.diffId), img.config.rootfs.diff_ids);
  assert.equal(info.config.Labels['org.example'], 'kiln');

  const hist = await kiln(root, 'history', 'example.com/team/app:2.0');
  assert.equal(hist.code, 0, hist.stderr);
  const lines = hist.stdout.trim().split('\n');
  assert.equal(lines.length, 4);
  assert.match(lines[1]!, /COPY files \//);
  assert.match(lines[2]!, /LABEL org\.example=kiln\s+0B/);

  assert.equal((await kiln(root, 'tag', 'example.com/team/app:2.0', 'short')).code, 0);
  const byShort = JSON.parse((await kiln(root, 'inspect', 'docker.io/library/short:latest')).stdout) as { names: string[] };
  assert.deepEqual(byShort.names.sort(), ['docker.io/library/short:latest', 'example.com/team/app:2.0']);
  const rmi = await kiln(root, 'rmi', 'short');
  assert.equal(rmi.code, 0, rmi.stderr);
  assert.match(rmi.stdout, /Untagged: docker\.io\/library\/short:latest/);
  const gone = await kiln(root, 'inspect', 'short');
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no local image named short/);
  const bad = await kiln(root, 'tag', 'nothing:here', 'x');
  assert.equal(bad.code, 1);
});

test('import OCI layout tar and folder; export round trip with --iidfile and --metadata-file', async () => {
  const root = join(work, 'store-b');
  const imp = await kiln(root, 'import', ociTar);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, new RegExp(`Loaded image: kiln\\.test/demo:v1 \\(${img.manifestDigest}\\)`));

  const layoutDir = join(work, 'layout-dir');
  await mkdir(layoutDir);
  execFileSync('tar', ['-xf', ociTar, '-C', layoutDir]);
  const imp2 = await kiln(root, 'import', layoutDir, '--name', 'renamed:1');
  assert.equal(imp2.code, 0, imp2.stderr);
  assert.match(imp2.stdout, /docker\.io\/library\/renamed:1/);

  const out = join(work, 'exported.tar');
  const iid = join(work, 'iid');
  const meta = join(work, 'meta.json');
  const ex = await kiln(root, 'export', 'renamed:1', '-o', `type=docker,dest=${out}`, '--iidfile', iid, '--metadata-file', meta);
  assert.equal(ex.code, 0, ex.stderr);
  assert.equal(await readFile(iid, 'utf8'), img.configDigest);
  const m = JSON.parse(await readFile(meta, 'utf8')) as Record<string, unknown>;
  assert.equal(m['containerimage.digest'], img.manifestDigest);
  assert.equal(m['containerimage.config.digest'], img.configDigest);
  execFileSync('skopeo', ['inspect', `docker-archive:${out}`]);
  const dm = JSON.parse(execFileSync('tar', ['-xOf', out, 'manifest.json'], { encoding: 'utf8' })) as Array<{ RepoTags: string[] }>;
  assert.deepEqual(dm[0]!.RepoTags, ['renamed:1']);

  const local = join(work, 'local-from-cli');
  assert.equal((await kiln(root, 'export', 'kiln.test/demo:v1', '-o', local)).code, 0);
  const expectedDir = join(work, 'expected');
  await mkdir(expectedDir);
  const { expectedTree } = await import('./fixture.js');
  await expectedTree(expectedDir);
  assert.deepEqual(diffTrees(await readTree(local), await readTree(expectedDir)), []);

  const badSpec = await kiln(root, 'export', 'renamed:1', '-o', 'type=oci,dest=x.tar,compression=brotli');
  assert.equal(badSpec.code, 2);
  assert.match(badSpec.stderr, /compression must be gzip, zstd or uncompressed, not "brotli"/);
});

/** A `docker save` archive of the old layout, made by hand: <id>/layer.tar, <id>.json config, repositories. */
async function legacyDockerSave(dir: string, layerTar: Buffer, name: string): Promise<string> {
  const diffId = `sha256:${createHash('sha256').update(layerTar).digest('hex')}`;
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/hello'] }, rootfs: { type: 'layers', diff_ids: [diffId] } });
  const configHex = createHash('sha256').update(config).digest('hex');
  const layerId = 'a'.repeat(64);
  await mkdir(join(dir, layerId), { recursive: true });
  await writeFile(join(dir, layerId, 'layer.tar'), layerTar);
  await writeFile(join(dir, layerId, 'VERSION'), '1.0');
  await writeFile(join(dir, `${configHex}.json`), config);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify([{ Config: `${configHex}.json`, RepoTags: [name], Layers: [`${layerId}/layer.tar`] }]));
  await writeFile(join(dir, 'repositories'), JSON.stringify({ [name.split(':')[0]!]: { [name.split(':')[1]!]: layerId } }));
  const out = `${dir}.tar`;
  execFileSync('tar', ['-cf', out, '-C', dir, '.']);
  return out;
}

test('import a legacy docker save archive (gzipped as a whole), layer unpacked with its whiteouts', async () => {
  const root = join(work, 'store-c');
  const src = join(work, 'legacy-src');
  await mkdir(join(src, 'etc'), { recursive: true });
  await writeFile(join(src, 'hello'), 'hi\n');
  await writeFile(join(src, 'etc', '.wh.removed'), '');
  const layer = execFileSync('tar', ['--numeric-owner', '-cf', '-', '-C', src, 'hello', 'etc']);
  const archive = await legacyDockerSave(join(work, 'legacy'), layer, 'legacy/app:1');
  execFileSync('gzip', ['-k', archive]);
  const imp = await kiln(root, 'import', `${archive}.gz`);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, /docker\.io\/legacy\/app:1/);
  const local = join(work, 'legacy-out');
  assert.equal((await kiln(root, 'export', 'legacy/app:1', '-o', `type=local,dest=${local}`)).code, 0);
  assert.equal(await readFile(join(local, 'hello'), 'utf8'), 'hi\n');
  assert.deepEqual(await readdir(join(local, 'etc')), []);
  const snaps = await readdir(join(root, 'snapshots'));
  assert.equal(snaps.length, 1);
  // In the snapshot the whiteout is in overlay form: a 0/0 character device.
  const wh = execFileSync('stat', ['-c', '%F %t %T', join(root, 'snapshots', snaps[0]!, 'fs', 'etc', 'removed')], { encoding: 'utf8' });
  assert.equal(wh.trim(), 'character special file 0 0');
});

test('a binary xattr of a layer (security.capability) survives import, unpacking and a local export byte for byte', async () => {
  const root = join(work, 'store-xattr');
  const src = join(work, 'xattr-src');
  await mkdir(join(src, 'bin'), { recursive: true });
  await writeFile(join(src, 'bin', 'ping'), 'binary', { mode: 0o755 });
  // A VFS capability (v2) with cap_setuid (bit 7) and cap_net_raw (bit 13): byte 0x80 is not
  // UTF-8 on its own, which a decoder reading PAX values as text turns into U+FFFD.
  const cap = Buffer.from('0100000280200000000000000000000000000000', 'hex');
  setXattr(join(src, 'bin', 'ping'), 'security.capability', cap);
  // GNU tar writes the value raw in a SCHILY.xattr PAX record, as docker and BuildKit do.
  const layer = execFileSync('tar', ['--xattrs', '--xattrs-include=security.*', '--numeric-owner', '-cf', '-', '-C', src, 'bin']);
  const archive = await legacyDockerSave(join(work, 'xattr'), layer, 'caps/app:1');
  assert.equal((await kiln(root, 'import', archive)).code, 0);
  const local = join(work, 'xattr-out');
  const r = await kiln(root, 'export', 'caps/app:1', '-o', `type=local,dest=${local}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(getXattr(join(local, 'bin', 'ping'), 'security.capability')?.toString('hex'), cap.toString('hex'));
  const snaps = await readdir(join(root, 'snapshots'));
  assert.equal(snaps.length, 1);
  assert.equal(getXattr(join(root, 'snapshots', snaps[0]!, 'fs', 'bin', 'ping'), 'security.capability')?.toString('hex'), cap.toString('hex'));
});

test('evil archives are refused by import, with nothing written outside and no image left', async () => {
  const root = join(work, 'store-evil');
  const cases: Array<[string, string[], RegExp]> = [
    ['zip-slip', ['../../../tmp-kiln-evil-escape'], /path with \.\./],
    ['symlink escape', ['link', 'link/escaped'], /parent link is a symlink/],
  ];
  for (const [label, members, why] of cases) {
    const dir = join(work, `evil-${label.replace(/\W/g, '')}`);
    await mkdir(dir);
    const target = join(work, 'outside-target');
    await mkdir(target, { recursive: true });
    // Built with tar-stream so the member names are exactly as written (GNU tar would clean them).
    const pack = tar.pack();
    for (const name of members) {
      if (name === 'link') pack.entry({ name, type: 'symlink', linkname: target, mode: 0o777, mtime: new Date(0) });
      else pack.entry({ name, type: 'file', mode: 0o644, mtime: new Date(0) }, 'pwned');
    }
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
    const layer = join(dir, 'layer.tar');
    await writeFile(layer, Buffer.concat(chunks));
    const archive = await legacyDockerSave(join(dir, 'img'), await readFile(layer), `evil/${label.replace(/\W/g, '')}:1`);
    const r = await kiln(root, 'import', archive);
    assert.equal(r.code, 1, `${label}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /refusing to extract/);
    assert.match(r.stderr, why);
    assert.deepEqual(await readdir(target), [], `${label}: nothing written through the link`);
    assert.equal(existsSync(join(work, '..', '..', 'tmp-kiln-evil-escape')), false);
    const images = await kiln(root, 'images', '-q');
    assert.equal(images.stdout, '', 'no image named after a refused import');
    assert.deepEqual((await readdir(join(root, 'snapshots'))).length, 0);
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
  }
});

test('a folder the kernel will not make (in /proc) is an error naming it, for the store and for an export, not a hang', async () => {
  const bad = `/proc/kiln-no-such-${process.pid}`;
  const opened = await runKiln(['images', '--root', `${bad}/store`], { timeoutMs: 20_000 });
  assert.equal(opened.signal, null, 'kiln was killed: it never returned');
  assert.equal(opened.code, 2, opened.stderr);
  assert.match(opened.stderr, new RegExp(`cannot use ${bad}/store as the store: ENOENT`));

  const root = join(work, 'store-bad-dest');
  assert.equal((await kiln(root, 'import', ociTar)).code, 0);
  for (const spec of [`type=docker,dest=${bad}/x.tar`, `type=local,dest=${bad}/x`]) {
    const ex = await runKiln(['export', '--root', root, 'kiln.test/demo:v1', '-o', spec], { timeoutMs: 20_000 });
    assert.equal(ex.signal, null, `${spec}: kiln was killed: it never returned`);
    assert.equal(ex.code, 1, ex.stderr);
    assert.match(ex.stderr, new RegExp(`cannot write ${bad}/x(\\.tar)?: ENOENT`));
  }
  // A missing folder elsewhere is still made, however deep.
  const deep = join(work, 'a', 'b', 'c', 'out.tar');
  assert.equal((await kiln(root, 'export', 'kiln.test/demo:v1', '-o', `type=docker,dest=${deep}`)).code, 0);
  assert.ok(existsSync(deep));
});

test('an export or --iidfile onto a device or named pipe writes into it, never replaces it; onto a folder it is an error', async () => {
  const root = join(work, 'store-special-dest');
  assert.equal((await kiln(root, 'import', ociTar)).code, 0);
  const file = join(work, 'special-ref.tar');
  assert.equal((await kiln(root, 'export', 'kiln.test/demo:v1', '-o', `type=docker,dest=${file}`)).code, 0);

  const fifo = join(work, 'export.fifo');
  execFileSync('mkfifo', [fifo]);
  // Read by another process, killed if the pipe never gets a writer.
  const read = new Promise<Buffer>((resolve, reject) => {
    execFile('cat', [fifo], { encoding: 'buffer', maxBuffer: 1 << 26, timeout: 60_000 }, (err, out) => (err ? reject(err) : resolve(out)));
  });
  const ex = await kiln(root, 'export', 'kiln.test/demo:v1', '-o', `type=docker,dest=${fifo}`);
  assert.equal(ex.code, 0, ex.stderr);
  assert.ok((await read).equals(await readFile(file)), 'the pipe carried the archive');
  assert.ok(statSync(fifo).isFIFO(), 'the pipe is still a pipe');

  // Device nodes of our own (the tests run as root), so that a regression replaces only them.
  const full = join(work, 'full');
  const nul = join(work, 'null');
  execFileSync('mknod', ['-m', '666', full, 'c', '1', '7']);
  execFileSync('mknod', ['-m', '666', nul, 'c', '1', '3']);
  const onFull = await kiln(root, 'export', 'kiln.test/demo:v1', '-o', `type=docker,dest=${full}`);
  assert.equal(onFull.code, 1);
  assert.match(onFull.stderr, new RegExp(`cannot write ${full}: ENOSPC`));
  assert.ok(statSync(full).isCharacterDevice(), 'the device is still a device');

  const folder = join(work, 'an-output-folder');
  await mkdir(folder);
  const onFolder = await kiln(root, 'export', 'kiln.test/demo:v1', '-o', `type=docker,dest=${folder}`);
  assert.equal(onFolder.code, 1);
  assert.match(onFolder.stderr, new RegExp(`cannot write ${folder}: it is a folder`));
  assert.deepEqual((await readdir(work)).filter((n) => n.includes('.kiln-')), [], 'nothing left beside it');

  const iid = await kiln(root, 'export', 'kiln.test/demo:v1', '-o', `type=docker,dest=${join(work, 'x.tar')}`, '--iidfile', nul);
  assert.equal(iid.code, 0, iid.stderr);
  assert.ok(statSync(nul).isCharacterDevice(), 'the device is still a device');
  const iidMissing = await kiln(root, 'export', 'kiln.test/demo:v1', '-o', `type=docker,dest=${join(work, 'y.tar')}`, '--iidfile', join(work, 'no', 'such', 'iid'));
  assert.equal(iidMissing.code, 1);
  assert.match(iidMissing.stderr, /--iidfile .*no\/such\/iid: cannot write it: ENOENT/);
});

test("what a killed export left beside its destination goes when it is written again; a live kiln's stays", async () => {
  const root = join(work, 'store-stale-temps');
  assert.equal((await kiln(root, 'import', ociTar)).code, 0);
  const dir = join(work, 'stale-temps');
  await mkdir(dir);
  // A pid that no longer runs: a process that has exited.
  const gone = execFileSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).trim();
  const stale = join(dir, `.out.tar.kiln-${gone}-0a1b2c3d.tmp`);
  const staleDir = join(dir, `.out.tar.kiln-${gone}-4e5f6a7b.tmp.old`);
  const live = join(dir, `.out.tar.kiln-${process.pid}-8c9d0e1f.tmp`);
  const other = join(dir, `.other.tar.kiln-${gone}-0a1b2c3d.tmp`);
  await writeFile(stale, 'half an archive');
  await mkdir(staleDir);
  await writeFile(live, 'being written');
  await writeFile(other, 'another destination');
  const ex = await kiln(root, 'export', 'kiln.test/demo:v1', '-o', `type=docker,dest=${join(dir, 'out.tar')}`);
  assert.equal(ex.code, 0, ex.stderr);
  assert.deepEqual((await readdir(dir)).sort(), [`.other.tar.kiln-${gone}-0a1b2c3d.tmp`, `.out.tar.kiln-${process.pid}-8c9d0e1f.tmp`, 'out.tar'].sort());
});

test('type=local into a folder that exists merges, as BuildKit does: its other files stay, what is in the way is replaced, a link in the way is not followed', async () => {
  const root = join(work, 'store-local-merge');
  assert.equal((await kiln(root, 'import', ociTar)).code, 0);
  const project = join(work, 'local-merge');
  const outside = join(work, 'local-merge-outside');
  await mkdir(project);
  await mkdir(outside);
  await writeFile(join(project, 'keep.txt'), 'precious');
  await writeFile(join(project, 'file'), 'old content');
  await symlink(outside, join(project, 'etc')); // the image has /etc
  const r = await kiln(root, 'export', 'kiln.test/demo:v1', '-o', `type=local,dest=${project}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(join(project, 'keep.txt'), 'utf8'), 'precious');
  assert.equal(await readFile(join(project, 'file'), 'utf8'), FILE_TEXT);
  assert.ok(lstatSync(join(project, 'etc')).isDirectory(), 'the link was replaced by the output folder');
  assert.equal(await readFile(join(project, 'etc/app/conf'), 'utf8'), 'key=value\n');
  assert.deepEqual(await readdir(outside), [], 'nothing was written through the link');
  assert.deepEqual((await readdir(work)).filter((n) => n.startsWith('.local-merge.kiln-')), [], 'no staging folder left');
});

test('annotations of an OCI layout output: in the manifest, and on its descriptor in index.json', async () => {
  const root = join(work, 'store-annotations');
  assert.equal((await kiln(root, 'import', ociTar)).code, 0);
  const layout = join(work, 'annotated-layout');
  const ex = await kiln(root, 'export', 'kiln.test/demo:v1', '-o',
    `type=oci,dest=${layout},tar=false,annotation.org.opencontainers.image.Title=Demo,annotation-manifest-descriptor.org.example.where=index`);
  assert.equal(ex.code, 0, ex.stderr);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
  assert.equal(index.manifests[0]!.annotations['org.example.where'], 'index');
  assert.equal(index.manifests[0]!.annotations['org.opencontainers.image.ref.name'], 'v1');
  // skopeo reads the layout; the manifest it finds carries the annotation, with its key's case kept.
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${layout}:v1`], { encoding: 'utf8' })) as { annotations?: Record<string, string> };
  assert.deepEqual(raw.annotations, { 'org.opencontainers.image.Title': 'Demo' });
  assert.notEqual(index.manifests[0]!.digest, img.manifestDigest, 'a new manifest');
});
