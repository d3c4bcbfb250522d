import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdir, symlink, readFile, readdir } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { ensureLayer, transcodeBlob } from '../../src/image/layers.js';
import { KilnError } from '../../src/util/errors.js';
import { writeImage } from '../../src/image/assemble.js';
import { loadImage, resolveLocal } from '../../src/image/load.js';
import { MediaType, type ImageConfigFile, type ImageManifest } from '../../src/image/types.js';
import { makeWhiteout } from '../../src/util/syscalls.js';
import { tempDir } from '../helpers/tmp.js';
import { commitTestSnapshot, touchTree, PLATFORM } from './fixtures.js';

async function twoLayerImage(store: Store, mtime: number) {
  const base = await commitTestSnapshot(store, async (d) => {
    await mkdir(join(d, 'etc'));
    await writeFile(join(d, 'etc/hello'), 'hello\n');
    await writeFile(join(d, 'etc/old'), 'old\n');
    await symlink('hello', join(d, 'etc/link'));
    await touchTree(d, mtime);
  });
  const empty = await commitTestSnapshot(store, async () => undefined);
  const top = await commitTestSnapshot(store, async (d) => {
    await mkdir(join(d, 'etc'));
    makeWhiteout(join(d, 'etc/old'));
    await writeFile(join(d, 'etc/new'), 'new\n', { mode: 0o600 });
    await touchTree(d, mtime);
  });
  return [base, empty, top];
}

const config = { ...PLATFORM, config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] } };
const history = [
  { created_by: 'COPY etc /etc' },
  { created_by: 'ENV PATH=/bin', empty_layer: true },
  { created_by: 'RUN true' },
  { created_by: 'RUN rm /etc/old' },
];

test('writeImage: empty layers left out and marked in history, fixed created time, OCI media types', async () => {
  const store = await Store.open(await tempDir());
  const layers = await twoLayerImage(store, 1_600_000_000);
  const img = await writeImage(store, { layers, config, history });
  assert.equal(img.manifest.mediaType, MediaType.ociManifest);
  assert.equal(img.manifest.config.mediaType, MediaType.ociConfig);
  assert.equal(img.manifest.layers.length, 2);
  assert.ok(img.manifest.layers.every((l) => l.mediaType === MediaType.ociLayerGzip));
  assert.equal(img.config.created, '1970-01-01T00:00:00Z');
  assert.deepEqual(
    img.config.history!.map((h) => [h.created_by, h.empty_layer ?? false, h.created]),
    [
      ['COPY etc /etc', false, '1970-01-01T00:00:00Z'],
      ['ENV PATH=/bin', true, '1970-01-01T00:00:00Z'],
      ['RUN true', true, '1970-01-01T00:00:00Z'],
      ['RUN rm /etc/old', false, '1970-01-01T00:00:00Z'],
    ],
  );
  assert.equal(img.config.rootfs.diff_ids.length, 2);
  const stored = JSON.parse((await store.readBlob(img.manifestDigest)).toString()) as ImageManifest;
  assert.deepEqual(stored, img.manifest);
  assert.equal((await store.getSnapshot(layers[1]!))!.empty, true);
  // The layer blob was made once and is reused.
  const meta = await store.getSnapshot(layers[0]!);
  assert.equal(meta!.blobs!.gzip!.digest, img.manifest.layers[0]!.digest);
  const again = await ensureLayer(store, layers[0]!, 'gzip');
  assert.equal(again.descriptor.digest, img.manifest.layers[0]!.digest);
  await assert.rejects(writeImage(store, { layers, config, history: history.slice(1) }), /history has 2 layer entries but the image has 3 layers/);
});

test('writeImage: the config object as BuildKit writes it, a base image\'s container fields and empty values left out', async () => {
  const store = await Store.open(await tempDir());
  const layers = await twoLayerImage(store, 1_600_000_000);
  // The shape of a config written by the classic builder or buildah: a container's whole config.
  const fromBase = {
    Hostname: '', Domainname: '', User: '', AttachStdin: false, Tty: false, Env: ['PATH=/bin'], Cmd: ['/bin/sh'], Image: 'sha256:1',
    Volumes: null, WorkingDir: '', Entrypoint: null, OnBuild: null, Labels: { a: 'b' }, ArgsEscaped: false, Healthcheck: { Test: ['NONE'] },
  };
  const img = await writeImage(store, { layers, config: { ...PLATFORM, config: fromBase as unknown as ImageConfigFile['config'] }, history });
  const stored = JSON.parse((await store.readBlob(img.configDigest)).toString()) as { config: Record<string, unknown> };
  assert.equal(JSON.stringify(stored.config), JSON.stringify({ Env: ['PATH=/bin'], Cmd: ['/bin/sh'], Labels: { a: 'b' }, Healthcheck: { Test: ['NONE'] } }));
});

test('two fresh stores, same contents, different mtimes: the same manifest digest under SOURCE_DATE_EPOCH', async () => {
  const a = await Store.open(await tempDir());
  const b = await Store.open(await tempDir());
  const imgA = await writeImage(a, { layers: await twoLayerImage(a, 1_600_000_000), config, history, sourceDateEpoch: 1_000_000 });
  const imgB = await writeImage(b, { layers: await twoLayerImage(b, 1_650_000_000), config, history, sourceDateEpoch: 1_000_000 });
  assert.equal(imgA.manifestDigest, imgB.manifestDigest);
  assert.equal(imgA.config.created, '1970-01-12T13:46:40Z');
  // Without the clamp, the mtimes show: the test above can fail.
  const c = await Store.open(await tempDir());
  const imgC = await writeImage(c, { layers: await twoLayerImage(c, 1_650_000_000), config, history });
  const imgD = await writeImage(a, { layers: await twoLayerImage(a, 1_600_000_000), config, history });
  assert.notEqual(imgC.manifestDigest, imgD.manifestDigest);
});

test('compressions: uncompressed blob digest is the diffID, zstd made from the same tar, docker flavour', async () => {
  const store = await Store.open(await tempDir());
  const layers = await twoLayerImage(store, 1_600_000_000);
  const gz = await ensureLayer(store, layers[0]!, 'gzip');
  const raw = await ensureLayer(store, layers[0]!, 'uncompressed');
  const zst = await ensureLayer(store, layers[0]!, 'zstd', 9);
  assert.equal(raw.descriptor.digest, gz.diffId);
  assert.equal(zst.diffId, gz.diffId);
  assert.equal(zst.descriptor.mediaType, MediaType.ociLayerZstd);
  const docker = await writeImage(store, { layers, config, history, flavour: 'docker' });
  assert.equal(docker.manifest.mediaType, MediaType.dockerManifest);
  assert.equal(docker.manifest.layers[0]!.mediaType, MediaType.dockerLayerGzip);
});

test('loadImage: tag resolution, layers materialised once per diffID, diffID checked, zstd transcoded', async () => {
  const store = await Store.open(await tempDir());
  const layers = await twoLayerImage(store, 1_600_000_000);
  const img = await writeImage(store, { layers, config, history });
  await store.setRef('docker.io/library/demo:latest', img.manifestDigest);
  assert.equal((await resolveLocal(store, 'demo')).digest, img.manifestDigest);
  assert.equal((await resolveLocal(store, img.manifestDigest)).digest, img.manifestDigest);
  assert.equal((await resolveLocal(store, img.manifestDigest.slice(7, 19))).digest, img.manifestDigest);
  await assert.rejects(resolveLocal(store, 'nothere'), /no local image named nothere/);
  const loaded = await loadImage(store, 'demo:latest');
  assert.equal(loaded.layerSnapshots.length, 2);
  assert.ok(loaded.layerSnapshots.every((s) => s.startsWith('layer-')));
  const top = store.snapshotFs(loaded.layerSnapshots[1]!);
  assert.equal(await readFile(join(top, 'etc/new'), 'utf8'), 'new\n');
  const again = await loadImage(store, img.manifestDigest);
  assert.deepEqual(again.layerSnapshots, loaded.layerSnapshots);
  // Rebuilt on top of the loaded layers, the base layers keep their blobs and diffIDs.
  const zstd = await writeImage(store, { layers: loaded.layerSnapshots, config, history: loaded.config.history, compression: 'zstd' });
  assert.deepEqual(zstd.config.rootfs.diff_ids, img.config.rootfs.diff_ids);
  const regz = await writeImage(store, { layers: loaded.layerSnapshots, config, history: loaded.config.history });
  assert.equal(regz.manifestDigest, img.manifestDigest);
  // A config whose diffID does not match the layer is refused.
  const badConfig: ImageConfigFile = { ...img.config, rootfs: { type: 'layers', diff_ids: [img.config.rootfs.diff_ids[1]!, img.config.rootfs.diff_ids[0]!] } };
  const cfg = await store.writeBlob(JSON.stringify(badConfig));
  const fresh = await Store.open(await tempDir());
  for (const l of img.manifest.layers) await fresh.writeBlob(await store.readBlob(l.digest as `sha256:${string}`));
  await fresh.writeBlob(await store.readBlob(cfg.digest));
  const m = await fresh.writeBlob(JSON.stringify({ ...img.manifest, config: { ...img.manifest.config, digest: cfg.digest, size: cfg.size } }));
  await assert.rejects(loadImage(fresh, m.digest), /unpacks to sha256:.*but the image config says/);
  assert.deepEqual((await fresh.listSnapshots()).filter((s) => s.startsWith('layer-')).length <= 1, true);
});

test('loadImage keeps each gzip layer\'s tar as a blob while unpacking it (the local image needs it uncompressed); a layer that fails its diffID leaves neither blob nor scratch file', async () => {
  const store = await Store.open(await tempDir());
  const layers = await twoLayerImage(store, 1_600_000_000);
  const img = await writeImage(store, { layers, config, history });
  const fresh = await Store.open(await tempDir());
  for (const l of img.manifest.layers) await fresh.writeBlob(await store.readBlob(l.digest as `sha256:${string}`));
  await fresh.writeBlob(await store.readBlob(img.configDigest));
  await fresh.writeBlob(await store.readBlob(img.manifestDigest));
  const tmpFiles = async () => (await readdir(fresh.path('tmp'))).filter((n) => n.endsWith('-tee'));

  const loaded = await loadImage(fresh, img.manifestDigest);
  for (const [i, snap] of loaded.layerSnapshots.entries()) {
    const diffId = img.config.rootfs.diff_ids[i]! as `sha256:${string}`;
    const meta = await fresh.getSnapshot(snap);
    assert.deepEqual(meta?.blobs?.uncompressed, { digest: diffId, size: meta?.size, mediaType: MediaType.ociLayer });
    const gunzipped = gunzipSync(await fresh.readBlob(img.manifest.layers[i]!.digest as `sha256:${string}`));
    assert.ok((await fresh.readBlob(diffId)).equals(gunzipped), `layer ${i}: the kept tar is the gzip blob's content`);
  }
  assert.deepEqual(await tmpFiles(), []);

  const other = await Store.open(await tempDir());
  for (const l of img.manifest.layers) await other.writeBlob(await store.readBlob(l.digest as `sha256:${string}`));
  const swapped: ImageConfigFile = { ...img.config, rootfs: { type: 'layers', diff_ids: [img.config.rootfs.diff_ids[1]!, img.config.rootfs.diff_ids[0]!] } };
  const cfg = await other.writeBlob(JSON.stringify(swapped));
  const m = await other.writeBlob(JSON.stringify({ ...img.manifest, config: { ...img.manifest.config, digest: cfg.digest, size: cfg.size } }));
  await assert.rejects(loadImage(other, m.digest), /unpacks to sha256:.*but the image config says/);
  for (const d of img.config.rootfs.diff_ids) assert.equal(await other.hasBlob(d as `sha256:${string}`), false);
  assert.deepEqual((await readdir(other.path('tmp'))).filter((n) => n.endsWith('-tee')), []);
});

test('recompressing a layer blob that has no snapshot checks its content against the diffID: a corrupt blob of the right length is refused, and nothing is stored', async () => {
  const store = await Store.open(await tempDir());
  const layers = await twoLayerImage(store, 1_600_000_000);
  const img = await writeImage(store, { layers, config, history, compression: 'uncompressed' });
  const gz = await writeImage(store, { layers, config, history });
  const blobsBefore = new Set(await store.listBlobs());
  for (const [layer, diffId] of [
    [img.manifest.layers[0]!, img.config.rootfs.diff_ids[0]!],
    [gz.manifest.layers[0]!, gz.config.rootfs.diff_ids[0]!],
  ] as Array<[{ digest: `sha256:${string}`; size: number }, `sha256:${string}`]>) {
    const source = layer.digest;
    const bytes = await readFile(store.blobPath(source));
    const good = await transcodeBlob(store, layer, diffId, 'zstd');
    assert.ok(await store.hasBlob(good.digest));
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(store.blobPath(source), bytes);
    await assert.rejects(transcodeBlob(store, layer, diffId, 'gzip', 9), (err: unknown) => {
      assert.ok(err instanceof KilnError);
      assert.match(err.message, new RegExp(`blob ${source} in the store is corrupt|${source} does not decompress to diffID ${diffId}`));
      return true;
    });
  }
  const added = (await store.listBlobs()).filter((d) => !blobsBefore.has(d));
  assert.equal(added.length, 2, 'only the two good zstd blobs were stored');
});

test('recompressing at export keeps the diffIDs of layers made under SOURCE_DATE_EPOCH', async () => {
  const store = await Store.open(await tempDir());
  const layers = await twoLayerImage(store, 1_600_000_000);
  const img = await writeImage(store, { layers, config, history, sourceDateEpoch: 1_000_000 });
  const { exportImage, parseOutputSpec } = await import('../../src/exporter/index.js');
  const dir = await tempDir();
  const r = await exportImage(store, img.manifestDigest, parseOutputSpec(`type=oci,dest=${join(dir, 'z.tar')},compression=zstd`));
  const m = JSON.parse((await store.readBlob(r.manifestDigest)).toString()) as ImageManifest;
  assert.equal(m.config.digest, img.configDigest);
  assert.ok(m.layers.every((l) => l.mediaType === MediaType.ociLayerZstd));
  // Each zstd blob unpacks to the diffID the config lists.
  const { openDecompressed } = await import('../../src/util/tar/filter.js');
  const { createHash } = await import('node:crypto');
  for (const [i, l] of m.layers.entries()) {
    const h = createHash('sha256');
    for await (const c of await openDecompressed(store.blobStream(l.digest as `sha256:${string}`))) h.update(c as Buffer);
    assert.equal(`sha256:${h.digest('hex')}`, img.config.rootfs.diff_ids[i]);
  }
});
