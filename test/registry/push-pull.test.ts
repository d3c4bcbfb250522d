// kiln push and kiln pull against Debian's real registry, checked by skopeo and podman.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { runKiln, runProgram } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { startRegistry, startProxy, completedUploads, blobDownloads, freePort, type TestRegistry } from '../helpers/registry.js';
import { Store } from '../../src/store/store.js';
import { pushImage } from '../../src/registry/push.js';
import { pullImage, resolveImage } from '../../src/registry/pull.js';
import type { ImageIndex, ImageManifest } from '../../src/image/types.js';
import { materializeLayer, unpackWhileDownloading } from '../../src/image/load.js';
import { allBlobs, busyboxLayer, fileLayer, imageOf, indexOf, storeImage, writeOciLayout, type ImageBlobs, type Layer } from './fixtures.js';

// Top level, not before(): helpers tie cleanup to the test context they start in.
const reg: TestRegistry = await startRegistry();
const bb: Layer = await busyboxLayer();
const img: ImageBlobs = imageOf([bb, await fileLayer('hello', 'hello from kiln\n')], undefined, ['/bin/cat', '/hello']);

async function storeWith(image: ImageBlobs, name?: string): Promise<{ root: string; store: Store }> {
  const root = await tempDir('kiln-store-');
  const store = await Store.open(root);
  await storeImage(store, image, name);
  return { root, store };
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('kiln push uploads each blob once; pushing again uploads nothing', async () => {
  const { root } = await storeWith(img, `${reg.host}/kiln/bb:1`);
  const before1 = completedUploads(reg.requests()).length;
  const r1 = await runKiln(['push', '--root', root, `${reg.host}/kiln/bb:1`]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r1.stdout.trim(), img.manifest.digest);
  assert.equal(completedUploads(reg.requests()).length - before1, 3, 'config + 2 layers');

  const before2 = completedUploads(reg.requests()).length;
  const r2 = await runKiln(['push', '--root', root, `${reg.host}/kiln/bb:1`]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(completedUploads(reg.requests()).length - before2, 0);
  assert.match(r2.stderr, /0 uploaded, 0 mounted, 3 already there/);
});

test('skopeo copies what kiln pushed, byte for byte', async () => {
  const { root } = await storeWith(img, `${reg.host}/kiln/skopeo-check:1`);
  const r = await runKiln(['push', '--root', root, `${reg.host}/kiln/skopeo-check:1`]);
  assert.equal(r.code, 0, r.stderr);
  const out = await tempDir('kiln-oci-');
  const s = await runProgram('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/kiln/skopeo-check:1`, `oci:${out}:x`]);
  assert.equal(s.code, 0, s.stderr);
  const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as ImageIndex;
  assert.equal(index.manifests[0]!.digest, img.manifest.digest);
  for (const b of allBlobs(img)) {
    const got = await readFile(join(out, 'blobs', 'sha256', b.digest.slice(7)));
    assert.equal(sha(got), b.digest);
  }
});

test('podman pulls and runs what kiln pushed', async () => {
  const { root } = await storeWith(img, `${reg.host}/kiln/podman-run:1`);
  const r = await runKiln(['push', '--root', root, `${reg.host}/kiln/podman-run:1`]);
  assert.equal(r.code, 0, r.stderr);
  const pod = await tempDir('kiln-podman-');
  const base = [
    '--root', join(pod, 'root'), '--runroot', join(pod, 'run'), '--storage-driver', 'vfs',
    '--runtime', 'runc', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file',
  ];
  const p = await runProgram('podman', [...base, 'pull', '--tls-verify=false', `${reg.host}/kiln/podman-run:1`]);
  assert.equal(p.code, 0, p.stderr);
  const run = await runProgram('podman', [
    ...base, 'run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
    `${reg.host}/kiln/podman-run:1`,
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, 'hello from kiln\n');
});

test('kiln pulls an image skopeo pushed; a second pull downloads nothing', async () => {
  const own = imageOf([bb, await fileLayer('etc/motd', 'pushed by skopeo\n')]);
  const layout = await tempDir('kiln-layout-');
  await writeOciLayout(layout, [own.config, ...own.layers], own.manifest, 'v1');
  const s = await runProgram('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${reg.host}/from/skopeo:v1`]);
  assert.equal(s.code, 0, s.stderr);
  const raw = await runProgram('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/from/skopeo:v1`]);
  const pushedDigest = sha(Buffer.from(raw.stdout));

  const root = await tempDir('kiln-store-');
  const downloads0 = blobDownloads(reg.requests()).length;
  const p1 = await runKiln(['pull', '--root', root, `${reg.host}/from/skopeo:v1`]);
  assert.equal(p1.code, 0, p1.stderr);
  assert.equal(p1.stdout.trim(), `${reg.host}/from/skopeo:v1`);
  assert.equal(blobDownloads(reg.requests()).length - downloads0, 3);
  const store = await Store.open(root);
  const ref = await store.getRef(`${reg.host}/from/skopeo:v1`);
  assert.equal(ref?.digest, pushedDigest);
  for (const l of own.layers) assert.ok(await store.hasBlob(l.digest), l.digest);

  const downloads1 = blobDownloads(reg.requests()).length;
  const p2 = await runKiln(['pull', '--root', root, `${reg.host}/from/skopeo:v1`]);
  assert.equal(p2.code, 0, p2.stderr);
  assert.match(p2.stderr, /Image is up to date/);
  assert.equal(blobDownloads(reg.requests()).length - downloads1, 0);

  // FROM semantics: the local image is used without asking the registry at all.
  const reqs = reg.requests().length;
  const local = await resolveImage(store, `${reg.host}/from/skopeo:v1`, { os: 'linux', architecture: 'amd64' });
  assert.equal(local.digest, pushedDigest);
  assert.equal(local.downloaded, 0);
  assert.equal(reg.requests().length, reqs);
});

test('a build\'s pull hands over each layer as soon as its blob is stored, with its diffID; unpacking one layer twice at once unpacks it once', async () => {
  const own = imageOf([bb, await fileLayer('etc/early', 'unpacked early\n'), await fileLayer('etc/late', 'late\n')]);
  const src = await storeWith(own, `${reg.host}/early/unpack:1`);
  await pushImage(src.store, own.manifest.digest, `${reg.host}/early/unpack:1`);
  const store = await Store.open(await tempDir('kiln-store-'));
  const handed: Array<{ digest: string; diffId: string; stored: Promise<boolean> }> = [];
  const pulled = await pullImage(store, `${reg.host}/early/unpack:1`, {
    onLayer: (layer, diffId) => handed.push({ digest: layer.digest, diffId, stored: store.hasBlob(layer.digest as `sha256:${string}`) }),
  });
  assert.deepEqual(handed.map((h) => h.digest).sort(), pulled.manifest.layers.map((l) => l.digest).sort());
  for (const h of handed) {
    assert.equal(await h.stored, true, 'the blob is in the store when its layer is handed over');
    const i = pulled.manifest.layers.findIndex((l) => l.digest === h.digest);
    assert.equal(h.diffId, pulled.config.rootfs.diff_ids[i]);
  }
  const [layer, diffId] = [pulled.manifest.layers[1]!, pulled.config.rootfs.diff_ids[1]! as `sha256:${string}`];
  const first = materializeLayer(store, diffId, layer);
  assert.equal(materializeLayer(store, diffId, layer), first, 'a second ask waits for the unpacking under way');
  const snap = await first;
  assert.equal(await readFile(join(store.snapshotFs(snap), 'etc/early'), 'utf8'), 'unpacked early\n');
});

test('a build\'s pull unpacks each layer from its download: the layer is unpacked without reading the stored blob, and records both of its blobs', async () => {
  const own = imageOf([bb, await fileLayer('etc/streamed', 'unpacked on the way\n')]);
  const src = await storeWith(own, `${reg.host}/stream/unpack:1`);
  await pushImage(src.store, own.manifest.digest, `${reg.host}/stream/unpack:1`);
  const store = await Store.open(await tempDir('kiln-store-'));
  const pulled = await pullImage(store, `${reg.host}/stream/unpack:1`, {
    onLayerDownload: (layer, diffId, bytes, stored) => unpackWhileDownloading(store, diffId, layer, bytes, stored),
  });
  // Gone from the store: only an unpacking from the download can still give the layers.
  for (const l of pulled.manifest.layers) await rm(store.blobPath(l.digest as `sha256:${string}`));
  const snaps = await Promise.all(pulled.manifest.layers.map((l, i) => materializeLayer(store, pulled.config.rootfs.diff_ids[i]! as `sha256:${string}`, l)));
  assert.equal(await readFile(join(store.snapshotFs(snaps[1]!), 'etc/streamed'), 'utf8'), 'unpacked on the way\n');
  const meta = await store.getSnapshot(snaps[1]!);
  assert.equal(meta?.blobs?.gzip?.digest, pulled.manifest.layers[1]!.digest);
  assert.equal(meta?.blobs?.uncompressed?.digest, pulled.config.rootfs.diff_ids[1]);
  assert.deepEqual(await readdir(store.path('tmp')), []);
});

test('an unpacking stopped by the build\'s signal leaves no snapshot and no scratch folder; asked again, it unpacks', async () => {
  const own = imageOf([bb]);
  const { store } = await storeWith(own);
  const aborted = AbortSignal.abort(new Error('build cancelled (SIGINT)'));
  const layer = (JSON.parse(own.manifest.bytes.toString()) as ImageManifest).layers[0]!;
  const diffId = own.layers[0]!.diffId;
  await assert.rejects(materializeLayer(store, diffId, layer, aborted), /build cancelled \(SIGINT\)/);
  assert.deepEqual((await store.listSnapshots()).filter((s) => s.startsWith('layer-')), []);
  assert.deepEqual(await readdir(store.path('tmp')), []);
  const snap = await materializeLayer(store, diffId, layer);
  assert.ok((await readdir(join(store.snapshotFs(snap), 'bin'))).includes('busybox'));
});

test('a multi-platform index: --platform picks the image, the default is this machine', async () => {
  const amd = imageOf([await fileLayer('arch', 'amd64\n')], { os: 'linux', architecture: 'amd64' });
  const arm = imageOf([await fileLayer('arch', 'arm64\n')], { os: 'linux', architecture: 'arm64', variant: 'v8' });
  const idx = indexOf([amd, arm]);
  const layout = await tempDir('kiln-layout-');
  await writeOciLayout(layout, [...allBlobs(amd), ...allBlobs(arm)], idx, 'multi');
  const s = await runProgram('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${reg.host}/multi/arch:1`]);
  assert.equal(s.code, 0, s.stderr);

  const root = await tempDir('kiln-store-');
  const a = await runKiln(['pull', '--root', root, '--platform', 'linux/arm64', `${reg.host}/multi/arch:1`]);
  assert.equal(a.code, 0, a.stderr);
  const store = await Store.open(root);
  assert.equal((await store.getRef(`${reg.host}/multi/arch:1`))?.digest, arm.manifest.digest);
  assert.ok(await store.hasBlob(arm.layers[0]!.digest));
  assert.ok(!(await store.hasBlob(amd.layers[0]!.digest)), 'the other platform is not fetched');

  const d = await runKiln(['pull', '--root', root, `${reg.host}/multi/arch:1`]);
  assert.equal(d.code, 0, d.stderr);
  assert.equal((await store.getRef(`${reg.host}/multi/arch:1`))?.digest, amd.manifest.digest);

  // By digest of the index: resolved locally once both are there, no tag needed.
  const byDigest = await resolveImage(store, `${reg.host}/multi/arch@${idx.digest}`, { os: 'linux', architecture: 'arm64' }, { pull: 'never' });
  assert.equal(byDigest.digest, arm.manifest.digest);

  const bad = await runKiln(['pull', '--root', root, '--platform', 'linux/s390x', `${reg.host}/multi/arch:1`]);
  assert.notEqual(bad.code, 0, bad.stderr);
  assert.match(bad.stderr, /no image for platform linux\/s390x \(the index has: linux\/amd64, linux\/arm64\/v8\)/);
});

test('a second repository on the same registry gets blobs by cross-repository mount', async () => {
  const { root } = await storeWith(img, `${reg.host}/mount/src:1`);
  assert.equal((await runKiln(['push', '--root', root, `${reg.host}/mount/src:1`])).code, 0);
  const before1 = completedUploads(reg.requests()).length;
  const r = await runKiln(['push', '--root', root, `${reg.host}/mount/src:1`, `${reg.host}/mount/dst:2`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /0 uploaded, 3 mounted/);
  assert.equal(completedUploads(reg.requests()).length - before1, 0);
  const s = await runProgram('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/mount/dst:2`]);
  assert.equal(sha(Buffer.from(s.stdout)), img.manifest.digest);
});

test('kiln push uploads each layer as soon as it is compressed, the smallest first, and tags once all are up', async () => {
  // kiln build stores layers uncompressed, so the push compresses them: four COPY layers of
  // random bytes, the small one in the middle.
  const ctx = await tempDir('kiln-ctx-');
  const sizes = { big1: 12, small: 1, big2: 12, big3: 12 };
  for (const [name, mb] of Object.entries(sizes)) await writeFile(join(ctx, name), randomBytes(mb << 20));
  await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\n${Object.keys(sizes).map((n) => `COPY ${n} /${n}\n`).join('')}`);
  const root = await tempDir('kiln-store-');
  const built = await runKiln(['build', '--root', root, '--progress', 'quiet', '-t', 'overlap:1', ctx]);
  assert.equal(built.code, 0, built.stderr);
  const proxy = await startProxy(reg.host);
  const r = await runKiln(['push', '--root', root, 'overlap:1', `${proxy.host}/overlap/img:1`]);
  assert.equal(r.code, 0, r.stderr);

  const store = await Store.open(root);
  const manifest = JSON.parse((await store.readBlob(r.stdout.trim() as `sha256:${string}`)).toString()) as ImageManifest;
  assert.equal(manifest.layers.length, 4);
  assert.ok(manifest.layers.every((l) => l.mediaType.endsWith('+gzip')));
  // Each compressed blob's mtime is when its compression ended.
  const compressed = await Promise.all(manifest.layers.map(async (l) => (await stat(store.blobPath(l.digest as `sha256:${string}`))).mtimeMs));
  const uploads = proxy.requests.filter((q) => q.method === 'POST' && q.url.includes('/blobs/uploads/'));
  const puts = proxy.requests.filter((q) => q.method === 'PUT' && q.url.includes('/blobs/uploads/'));
  assert.equal(puts.length, 5, 'config and four layers');
  assert.ok(Math.min(...uploads.map((q) => q.at)) < Math.max(...compressed), 'the first upload began before the last layer was compressed');
  assert.ok(puts[0]!.url.includes(encodeURIComponent(manifest.layers[1]!.digest)) || puts[0]!.url.includes(manifest.layers[1]!.digest), `the small layer went first: ${puts[0]!.url}`);
  const tagged = proxy.requests.find((q) => q.method === 'PUT' && q.url.includes('/manifests/'));
  assert.ok(tagged && puts.every((q) => q.at < tagged.at), 'the manifest goes last');
  const s = await runProgram('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/overlap/img:1`]);
  assert.equal(sha(Buffer.from(s.stdout)), r.stdout.trim());
});

test('chunked uploads reassemble to the same blob', async () => {
  const big = imageOf([bb]);
  const { store } = await storeWith(big);
  const res = await pushImage(store, big.manifest.digest, `${reg.host}/chunked/img:1`, { upload: { mode: 'chunked', chunkSize: 256 * 1024 } });
  assert.equal(res.uploaded, 2);
  const patches = reg.requests().filter((q) => q.method === 'PATCH' && q.uri.includes('/chunked/img/'));
  assert.ok(patches.length >= Math.floor(bb.bytes.length / (256 * 1024)), `${patches.length} PATCH requests`);
  const root2 = await tempDir('kiln-store-');
  const store2 = await Store.open(root2);
  const pulled = await pullImage(store2, `${reg.host}/chunked/img:1`);
  assert.equal(pulled.digest, big.manifest.digest);
  assert.equal(sha(await store2.readBlob(bb.digest)), bb.digest);
});

test('pull errors are clear: unknown tag, unreachable registry, non-loopback HTTP', async () => {
  const root = await tempDir('kiln-store-');
  const missing = await runKiln(['pull', '--root', root, `${reg.host}/nope/nothing:1`]);
  assert.notEqual(missing.code, 0, missing.stderr);
  assert.match(missing.stderr, new RegExp(`${reg.host}/nope/nothing:1: not found in the registry`));
  const bad = await runKiln(['pull', '--root', root, 'Bad/Name']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /invalid reference "Bad\/Name"/);
  const down = await runKiln(['pull', '--root', root, `127.0.0.1:${await freePort()}/x:1`]);
  assert.equal(down.code, 1, down.stderr);
  assert.match(down.stderr, /cannot reach registry 127\.0\.0\.1:\d+: ECONNREFUSED/);
  assert.deepEqual(await readdir(join(root, 'refs')), []);
});

test('plain HTTP to a host that is not loopback by name needs --insecure-registry', async () => {
  // The same registry, reached through an address kiln does not treat as loopback.
  const mapped = `[::ffff:127.0.0.1]:${reg.port}`;
  const { root } = await storeWith(img);
  const refused = await runKiln(['pull', '--root', root, `${mapped}/kiln/bb:1`]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /cannot reach registry \[::ffff:127\.0\.0\.1\]:\d+: .*plain HTTP is used only for localhost and hosts given with --insecure-registry/);
  const allowed = await runKiln(['pull', '--root', root, '--insecure-registry', mapped, `${mapped}/kiln/bb:1`]);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(allowed.stdout.trim(), `${mapped}/kiln/bb:1`);
});

test('FROM semantics: a local tag is used as is; pull "always" (--pull) sees the tag move', async () => {
  const name = `${reg.host}/moving/tag:latest`;
  const v1 = imageOf([await fileLayer('v', '1\n')]);
  const v2 = imageOf([await fileLayer('v', '2\n')]);
  const { store: pub } = await storeWith(v1);
  await storeImage(pub, v2);
  await pushImage(pub, v1.manifest.digest, name);

  const root = await tempDir('kiln-store-');
  const store = await Store.open(root);
  const platform = { os: 'linux', architecture: 'amd64' };
  assert.equal((await resolveImage(store, name, platform)).digest, v1.manifest.digest);
  await pushImage(pub, v2.manifest.digest, name);
  assert.equal((await resolveImage(store, name, platform)).digest, v1.manifest.digest, 'local wins without --pull');
  const fresh = await resolveImage(store, name, platform, { pull: true });
  assert.equal(fresh.digest, v2.manifest.digest);
  assert.equal(fresh.downloaded, 2);
  assert.equal((await store.getRef(name))?.digest, v2.manifest.digest);
  assert.equal((await resolveImage(store, name, platform, { pull: 'always' })).downloaded, 0);
});
