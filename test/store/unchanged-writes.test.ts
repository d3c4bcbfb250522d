// A rebuild that changes nothing writes nothing durable: a tag that already names the image
// and a diffID already linked to its snapshot are left as they are (each write is an fsync).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { sha256, hexOf } from '../../src/util/digest.js';
import { tempDir } from '../helpers/tmp.js';
import { makeTestImage } from '../exporter/fixture.js';

test('setRef and linkDiffId rewrite only what changes', async () => {
  const store = await Store.open(join(await tempDir(), 'store'));
  const img = await makeTestImage(store);
  const other = await makeTestImage(store, { mtime: 1_700_000_000 });
  assert.notEqual(other.manifestDigest, img.manifestDigest);
  const name = 'kiln.test/same:1';
  const refFile = join(store.root, 'refs', encodeURIComponent(name));
  await store.setRef(name, img.manifestDigest);
  const first = await store.getRef(name);
  const before = await stat(refFile);
  await store.setRef(name, img.manifestDigest);
  assert.equal((await stat(refFile)).ino, before.ino, 'the same tag was written again');
  assert.deepEqual(await store.getRef(name), first);
  await store.setRef(name, other.manifestDigest);
  assert.equal((await store.getRef(name))?.digest, other.manifestDigest);

  const diffId = sha256('a layer');
  const diffFile = join(store.root, 'diffids', hexOf(diffId));
  await store.linkDiffId(diffId, 'snap-a');
  const linked = await stat(diffFile);
  await store.linkDiffId(diffId, 'snap-a');
  assert.equal((await stat(diffFile)).ino, linked.ino, 'the same link was written again');
  await store.linkDiffId(diffId, 'snap-b');
  assert.notEqual((await stat(diffFile)).ino, linked.ino);
});
