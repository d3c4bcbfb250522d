import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { unmountAllUnder } from '../../src/store/mounts.js';
import { exportImage, parseOutputSpec } from '../../src/exporter/index.js';
import type { WrittenImage } from '../../src/image/assemble.js';
import { MediaType, type ImageIndex, type ImageManifest } from '../../src/image/types.js';
import { hexOf } from '../../src/util/digest.js';
import { KilnError } from '../../src/util/errors.js';
import { runProgram } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { assertValidOci } from '../image/oci-schemas.js';
import { diffTrees, readTree } from './tree.js';
import { expectedTree, FILE_TEXT, makeTestImage } from './fixture.js';

let store: Store;
let img: WrittenImage;
const work = await tempDir();
let expected: Awaited<ReturnType<typeof readTree>>;

before(async () => {
  store = await Store.open(join(work, 'store'));
  img = await makeTestImage(store);
  await mkdir(join(work, 'expected'));
  await expectedTree(join(work, 'expected'));
  expected = await readTree(join(work, 'expected'));
});

async function exportTo(text: string) {
  return exportImage(store, img.manifestDigest, parseOutputSpec(text));
}

/** Validates every JSON document of an OCI layout folder against the image-spec schemas. */
async function validateLayout(dir: string): Promise<ImageIndex> {
  await assertValidOci('application/vnd.oci.layout.header.v1+json', await readFile(join(dir, 'oci-layout'), 'utf8'), 'oci-layout');
  const indexText = await readFile(join(dir, 'index.json'), 'utf8');
  await assertValidOci(MediaType.ociIndex, indexText, 'index.json');
  const index = JSON.parse(indexText) as ImageIndex;
  for (const m of index.manifests) {
    const text = await readFile(join(dir, 'blobs/sha256', hexOf(m.digest)), 'utf8');
    await assertValidOci(MediaType.ociManifest, text, `manifest ${m.digest}`);
    const manifest = JSON.parse(text) as ImageManifest;
    await assertValidOci(MediaType.ociConfig, await readFile(join(dir, 'blobs/sha256', hexOf(manifest.config.digest)), 'utf8'), 'config');
    for (const l of manifest.layers) assert.equal(lstatSync(join(dir, 'blobs/sha256', hexOf(l.digest))).size, l.size);
  }
  return index;
}

test('the stored manifest and config validate against the OCI schemas', async () => {
  await assertValidOci(MediaType.ociManifest, await store.readBlob(img.manifestDigest), 'manifest');
  await assertValidOci(MediaType.ociConfig, await store.readBlob(img.configDigest), 'config');
  assert.equal(img.config.history!.filter((h) => h.empty_layer).length, 1);
});

test('type=oci tar: skopeo reads it, and its layout validates', async () => {
  const dest = join(work, 'out', 'image.tar');
  const r = await exportTo(`type=oci,dest=${dest},name=kiln.test/demo:v1`);
  assert.equal(r.manifestDigest, img.manifestDigest);
  const info = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${dest}`], { encoding: 'utf8' })) as { Digest: string; Layers: string[]; Labels: Record<string, string> };
  assert.equal(info.Digest, img.manifestDigest);
  assert.deepEqual(info.Layers, img.manifest.layers.map((l) => l.digest));
  assert.equal(info.Labels['org.example'], 'kiln');
  const unpacked = join(work, 'oci-tar-unpacked');
  await mkdir(unpacked);
  execFileSync('tar', ['-xf', dest, '-C', unpacked]);
  const index = await validateLayout(unpacked);
  assert.equal(index.manifests[0]!.annotations!['org.opencontainers.image.ref.name'], 'v1');
  assert.equal(index.manifests[0]!.annotations!['io.containerd.image.name'], 'kiln.test/demo:v1');
  // The archive itself is deterministic: the same export twice gives the same bytes.
  const again = join(work, 'out', 'again.tar');
  await exportTo(`type=oci,dest=${again},name=kiln.test/demo:v1`);
  assert.deepEqual(await readFile(again), await readFile(dest));
  assert.deepEqual((await readdir(join(work, 'out'))).sort(), ['again.tar', 'image.tar'], 'no temp files left beside the output');
});

test('type=oci,tar=false: umoci unpacks exactly the expected tree', async () => {
  const dest = join(work, 'layout');
  await exportTo(`type=oci,dest=${dest},tar=false,name=kiln.test/demo:v1`);
  await validateLayout(dest);
  const bundle = join(work, 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${dest}:v1`, bundle]);
  const got = await readTree(join(bundle, 'rootfs'));
  assert.deepEqual(diffTrees(got, expected), []);
  const rootfs = join(bundle, 'rootfs');
  assert.equal(lstatSync(join(rootfs, 'etc/app/conf')).ino, lstatSync(join(rootfs, 'etc/app/conf.hard')).ino, 'hard link kept');
  assert.equal(existsSync(join(rootfs, 'home')), false);
  assert.deepEqual(await readdir(join(rootfs, 'var')), ['new']);
});

test('type=local and type=tar: the merged filesystem, whiteouts applied', async () => {
  const local = join(work, 'local');
  await exportTo(`type=local,dest=${local}`);
  assert.deepEqual(diffTrees(await readTree(local), expected), []);
  assert.equal(lstatSync(join(local, 'etc/app/conf')).ino, lstatSync(join(local, 'etc/app/conf.hard')).ino);
  // Exporting again into the folder gives the same tree (each entry replaced by the output's).
  await exportTo(`type=local,dest=${local}`);
  assert.deepEqual(diffTrees(await readTree(local), expected), []);

  const tarFile = join(work, 'fs.tar');
  await exportTo(`type=tar,dest=${tarFile}`);
  const x = join(work, 'fs-unpacked');
  await mkdir(x);
  execFileSync('tar', ['--numeric-owner', '-xpf', tarFile, '-C', x]);
  assert.deepEqual(diffTrees(await readTree(x), expected), []);
  const names = execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' });
  assert.doesNotMatch(names, /\.wh\./);
});

test('type=docker: skopeo reads it, podman loads and runs it', async () => {
  const dest = join(work, 'docker.tar');
  await exportTo(`type=docker,dest=${dest},name=kiln.test/demo:v1`);
  const info = JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${dest}`], { encoding: 'utf8' })) as { RepoTags: string[]; Layers: string[] };
  assert.equal(info.Layers.length, 2);
  const listing = execFileSync('tar', ['-xOf', dest, 'manifest.json'], { encoding: 'utf8' });
  const m = JSON.parse(listing) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
  assert.deepEqual(m[0]!.RepoTags, ['kiln.test/demo:v1']);
  assert.equal(m[0]!.Config, `blobs/sha256/${hexOf(img.configDigest)}`);

  const podRoot = await mkdtemp(join(tmpdir(), 'kiln-podman-'));
  after(async () => {
    unmountAllUnder(podRoot);
    await rm(podRoot, { recursive: true, force: true });
  });
  const podman = ['--root', join(podRoot, 'root'), '--runroot', join(podRoot, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
  const load = await runProgram('podman', [...podman, 'load', '-i', dest]);
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stdout + load.stderr, /kiln\.test\/demo:v1/);
  const run = await runProgram('podman', [
    ...podman, 'run', '--rm', '--network', 'none', '--runtime', 'runc',
    '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
    'kiln.test/demo:v1', 'cat', '/file',
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, FILE_TEXT);
  const ls = await runProgram('podman', [...podman, 'run', '--rm', '--network', 'none', '--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', 'kiln.test/demo:v1', 'ls', '-ln', '/etc/app/conf']);
  assert.match(ls.stdout, /^-rw-r-----\s+2\s+1000\s+50\s/);
});

test('compression=zstd and uncompressed give new manifests with the same diffIDs; oci-mediatypes=false gives Docker types', async () => {
  const z = await exportTo(`type=oci,dest=${join(work, 'zstd.tar')},compression=zstd,compression-level=7`);
  assert.notEqual(z.manifestDigest, img.manifestDigest);
  const zm = JSON.parse((await store.readBlob(z.manifestDigest)).toString()) as ImageManifest;
  assert.ok(zm.layers.every((l) => l.mediaType === MediaType.ociLayerZstd));
  assert.equal(zm.config.digest, img.configDigest);
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${join(work, 'zstd.tar')}`], { encoding: 'utf8' })) as ImageManifest;
  assert.deepEqual(raw, zm);
  // umoci 0.4 cannot read zstd layers: skopeo (an independent zstd reader) recompresses them first.
  const bundle = join(work, 'zstd-bundle');
  const layout = join(work, 'zstd-layout');
  await exportTo(`type=oci,dest=${join(work, 'zstd-named.tar')},compression=zstd,compression-level=7,name=kiln.test/z:1`);
  execFileSync('skopeo', ['copy', '-q', '--dest-compress', '--dest-compress-format', 'gzip', `oci-archive:${join(work, 'zstd-named.tar')}`, `oci:${layout}:1`]);
  execFileSync('umoci', ['unpack', '--image', `${layout}:1`, bundle]);
  assert.deepEqual(diffTrees(await readTree(join(bundle, 'rootfs')), expected), []);

  const u = await exportTo(`type=oci,dest=${join(work, 'raw.tar')},compression=uncompressed`);
  const um = JSON.parse((await store.readBlob(u.manifestDigest)).toString()) as ImageManifest;
  assert.deepEqual(um.layers.map((l) => l.digest), img.config.rootfs.diff_ids);
  const d = await exportTo(`type=oci,dest=${join(work, 'dockertypes.tar')},oci-mediatypes=false`);
  const dm = JSON.parse((await store.readBlob(d.manifestDigest)).toString()) as ImageManifest;
  assert.equal(dm.mediaType, MediaType.dockerManifest);
  assert.equal(dm.layers[0]!.mediaType, MediaType.dockerLayerGzip);
  execFileSync('skopeo', ['inspect', `oci-archive:${join(work, 'dockertypes.tar')}`]);
});

test('a failed export leaves nothing at the destination', async () => {
  const broken = await Store.open(join(work, 'broken-store'));
  const bimg = await makeTestImage(broken);
  // Corrupt the big layer: the export must notice and leave no file behind. (Exports check
  // lengths only; a same-length corruption is caught by the archive's reader, which checks
  // digests, and by `kiln store verify`.)
  const layer = bimg.manifest.layers[0]!.digest as `sha256:${string}`;
  await rm(broken.blobPath(layer));
  await (await import('node:fs/promises')).writeFile(broken.blobPath(layer), 'not the layer');
  const outDir = join(work, 'fail');
  await mkdir(outDir);
  for (const spec of [`type=oci,dest=${join(outDir, 'x.tar')}`, `type=docker,dest=${join(outDir, 'y.tar')}`, `type=oci,dest=${join(outDir, 'dir')},tar=false`]) {
    await assert.rejects(exportImage(broken, bimg.manifestDigest, parseOutputSpec(spec)), KilnError);
  }
  // Longer than the manifest says, or gone: named in the error, and still nothing left behind.
  const size = bimg.manifest.layers[0]!.size;
  await (await import('node:fs/promises')).writeFile(broken.blobPath(layer), Buffer.alloc(size + 10));
  for (const spec of [`type=docker,dest=${join(outDir, 'y.tar')}`, `type=oci,dest=${join(outDir, 'dir')},tar=false`]) {
    await assert.rejects(exportImage(broken, bimg.manifestDigest, parseOutputSpec(spec)), new RegExp(`blob ${layer} in the store is corrupt`));
  }
  await rm(broken.blobPath(layer));
  await assert.rejects(exportImage(broken, bimg.manifestDigest, parseOutputSpec(`type=docker,dest=${join(outDir, 'y.tar')}`)), new RegExp(`blob ${layer} is not in the store`));
  assert.deepEqual(await readdir(outDir), []);
});
