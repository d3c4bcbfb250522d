// The build cache as an OCI artifact in a real registry and in an OCI layout folder.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runProgram } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { startRegistry, completedUploads, blobDownloads } from '../helpers/registry.js';
import { Store } from '../../src/store/store.js';
import type { Digest } from '../../src/graph/ops.js';
import { pushImage } from '../../src/registry/push.js';
import {
  pushCache,
  openRegistryCache,
  writeLocalCache,
  openLocalCache,
  CACHE_ARTIFACT_TYPE,
  INLINE_CACHE_FIELD,
  inlineCacheValue,
  type CacheContents,
  type CacheLayer,
} from '../../src/registry/cache-artifact.js';
import { MediaType } from '../../src/image/types.js';
import { fileLayer, imageOf, storeImage, type Layer } from './fixtures.js';

const reg = await startRegistry();
const l1 = await fileLayer('one', 'first step\n');
const l2 = await fileLayer('two', 'second step\n');
const src = await Store.open(await tempDir('kiln-store-'));
for (const l of [l1, l2]) await src.writeBlob(l.bytes, l.digest);

const k = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const asCache = (l: Layer): CacheLayer => ({ digest: l.digest, size: l.bytes.length, mediaType: MediaType.ociLayerGzip, diffId: l.diffId });
const contents: CacheContents = {
  records: [
    { key: k('3'), layer: asCache(l2) },
    { key: k('1'), layer: asCache(l1) },
    { key: k('2'), layer: null },
  ],
  mounts: [{ id: 'npm-cache', layer: asCache(l1) }],
};

test('cache to a registry: pushed once, then nothing; imported with manifest + config only, layers on demand', async () => {
  const ref = `${reg.host}/cache/app:buildcache`;
  const up0 = completedUploads(reg.requests()).length;
  const first = await pushCache(src, contents, ref);
  assert.equal(completedUploads(reg.requests()).length - up0, 3, 'config + 2 distinct layers');
  const second = await pushCache(src, contents, ref);
  assert.equal(second.digest, first.digest, 'the same cache gives the same artifact');
  assert.equal(completedUploads(reg.requests()).length - up0, 3);

  const raw = await runProgram('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  assert.equal(raw.code, 0, raw.stderr);
  assert.equal((JSON.parse(raw.stdout) as { artifactType?: string }).artifactType, CACHE_ARTIFACT_TYPE);

  const b = await Store.open(await tempDir('kiln-store-'));
  const dl0 = blobDownloads(reg.requests()).length;
  const cache = await openRegistryCache(b, ref);
  assert.ok(cache);
  assert.equal(blobDownloads(reg.requests()).length - dl0, 1, 'only the config');
  assert.deepEqual([...cache.records.keys()].sort(), [k('1'), k('2'), k('3')]);
  assert.equal(cache.records.get(k('2')), null);
  assert.deepEqual(cache.records.get(k('3')), asCache(l2));
  assert.deepEqual(cache.mounts, [{ id: 'npm-cache', layer: asCache(l1) }]);
  assert.equal(await b.hasBlob(l2.digest), false);
  await cache.fetchLayer(cache.records.get(k('3'))!);
  assert.equal(await b.hasBlob(l2.digest), true);
  assert.equal(await b.hasBlob(l1.digest), false, 'layers nobody asked for stay remote');
  assert.equal(blobDownloads(reg.requests()).length - dl0, 2);
});

test('cache layers already pushed with an image are not uploaded again', async () => {
  const img = imageOf([l1, l2]);
  const s = await Store.open(await tempDir('kiln-store-'));
  await storeImage(s, img);
  await pushImage(s, img.manifest.digest, `${reg.host}/shared/app:1`);
  const up0 = completedUploads(reg.requests()).length;
  const r = await pushCache(s, contents, `${reg.host}/shared/app:cache`);
  assert.equal(completedUploads(reg.requests()).length - up0, 1, 'only the cache config');
  assert.equal(r.skipped, 2);
});

test('a missing cache ref is no cache; an image ref is a clear error', async () => {
  const b = await Store.open(await tempDir('kiln-store-'));
  assert.equal(await openRegistryCache(b, `${reg.host}/cache/none:x`), undefined);
  const img = imageOf([l1]);
  await storeImage(src, img);
  await pushImage(src, img.manifest.digest, `${reg.host}/cache/notcache:1`);
  await assert.rejects(openRegistryCache(b, `${reg.host}/cache/notcache:1`), /not a kiln build cache/);
});

test('cache to a local folder: an OCI layout skopeo reads, imported lazily', async () => {
  const dir = await tempDir('kiln-cache-dir-');
  const digest = await writeLocalCache(src, contents, dir);
  const raw = await runProgram('skopeo', ['inspect', '--raw', `oci:${dir}:latest`]);
  assert.equal(raw.code, 0, raw.stderr);
  const b = await Store.open(await tempDir('kiln-store-'));
  const cache = await openLocalCache(b, dir);
  assert.ok(cache);
  assert.equal(cache.digest, digest);
  assert.equal(cache.records.size, 3);
  assert.equal(await b.hasBlob(l1.digest), false);
  await cache.fetchLayer(asCache(l1));
  assert.equal(await b.hasBlob(l1.digest), true);
  assert.equal(await openLocalCache(b, dir, 'other-tag'), undefined);
  assert.equal(await openLocalCache(b, `${dir}/missing`), undefined);
});

test('inline cache: an image whose config carries the records is a cache source over its own layers', async () => {
  const other = await fileLayer('other', 'not in the image\n');
  const inline = inlineCacheValue(
    [...contents.records, { key: k('4'), layer: asCache(other) }],
    [l1.diffId, l2.diffId],
  );
  assert.deepEqual(inline.records.map((r) => r.key), [k('1'), k('2'), k('3')], 'records whose layer the image lacks are left out');
  const img = imageOf([l1, l2], undefined, undefined, { [INLINE_CACHE_FIELD]: inline });
  const s = await Store.open(await tempDir('kiln-store-'));
  await storeImage(s, img);
  const ref = `${reg.host}/inline/app:1`;
  await pushImage(s, img.manifest.digest, ref);

  const b = await Store.open(await tempDir('kiln-store-'));
  const cache = await openRegistryCache(b, ref);
  assert.ok(cache);
  assert.equal(cache.digest, img.manifest.digest);
  assert.deepEqual(cache.records.get(k('1')), asCache(l1));
  assert.deepEqual(cache.records.get(k('3')), asCache(l2));
  assert.equal(cache.records.get(k('2')), null);
  await cache.fetchLayer(cache.records.get(k('3'))!);
  assert.equal(await b.hasBlob(l2.digest), true);
});
