// kiln store verify, kiln du and kiln prune through the CLI, on a store made with the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { sha256 } from '../../src/util/digest.js';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { commitTestSnapshot } from '../image/fixtures.js';
import { makeTestImage } from '../exporter/fixture.js';

async function setup() {
  const root = join(await tempDir(), 'store');
  const store = await Store.open(root);
  const img = await makeTestImage(store);
  await store.setRef('kiln.test/kept:1', img.manifestDigest);
  const cached = await commitTestSnapshot(store, (d) => writeFile(join(d, 'cached'), 'c'));
  const orphan = await commitTestSnapshot(store, (d) => writeFile(join(d, 'orphan'), 'o'));
  await store.putCacheRecord({ key: sha256('step'), snapshot: cached, createdAt: new Date().toISOString() });
  await store.putCacheRecord({ key: sha256('gone'), snapshot: 'no-such-snapshot', createdAt: new Date().toISOString() });
  const loose = await store.writeBlob('an unreferenced blob');
  return { root, store, img, cached, orphan, loose: loose.digest };
}

const kiln = (root: string, ...args: string[]) => runKiln([...args, '--root', root]);

test('kiln du reports space by kind', async () => {
  const { root } = await setup();
  const r = await kiln(root, 'du', '--json');
  assert.equal(r.code, 0, r.stderr);
  const usage = JSON.parse(r.stdout) as Array<{ kind: string; count: number; bytes: number }>;
  const by = Object.fromEntries(usage.map((u) => [u.kind, u]));
  assert.equal(by.snapshots!.count, 4);
  assert.equal(by['cache records']!.count, 2);
  assert.equal(by.refs!.count, 1);
  assert.ok(by.blobs!.bytes > 1_000_000, 'the busybox layer is counted');
  const table = await kiln(root, 'du');
  assert.match(table.stdout, /^KIND\s+COUNT\s+SIZE\n/);
  assert.match(table.stdout, /\ntotal\s+\d/);
});

test('kiln store verify: ok, then corrupt blobs and missing manifests are problems (exit 1)', async () => {
  const { root, store, img } = await setup();
  const ok = await kiln(root, 'store', 'verify');
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /checked \d+ blobs, 4 snapshots, 1 names: ok/);
  assert.match(ok.stderr, /cache record .*snapshot no-such-snapshot is gone/);

  await writeFile(store.blobPath(img.manifest.layers[1]!.digest as `sha256:${string}`), 'tampered');
  await store.setRef('kiln.test/broken:1', sha256('never written'));
  const bad = await kiln(root, 'store', 'verify');
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, new RegExp(`problem: blob ${img.manifest.layers[1]!.digest} is corrupt`));
  assert.match(bad.stdout, /problem: ref kiln\.test\/broken:1: blob sha256:[0-9a-f]+ is missing/);
  const usage = await kiln(root, 'store', 'check');
  assert.equal(usage.code, 2);
});

test('kiln prune keeps named images and cached steps; --keep-storage and --all go further', async () => {
  const { root, store, img, cached, orphan, loose } = await setup();
  const fresh = await kiln(root, 'prune', '--filter', 'until=1h');
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(fresh.stdout, /removed 0 snapshots, 1 cache records, 0 blobs/); // only the dangling record

  const r = await kiln(root, 'prune');
  assert.equal(r.code, 0, r.stderr);
  const snaps = await readdir(join(root, 'snapshots'));
  assert.ok(snaps.includes(cached), 'a snapshot a cache record names stays');
  assert.ok(!snaps.includes(orphan), 'an unreferenced snapshot goes');
  assert.equal(await store.hasBlob(loose), false);
  for (const l of img.manifest.layers) assert.ok(await store.hasBlob(l.digest as `sha256:${string}`), 'named image layers stay');
  assert.deepEqual(await readdir(join(root, 'tmp')), []);

  const keep = await kiln(root, 'prune', '--keep-storage', '0');
  assert.equal(keep.code, 0, keep.stderr);
  assert.deepEqual(await readdir(join(root, 'snapshots')), []);
  assert.equal(await store.getCacheRecord(sha256('step')), undefined);

  // The named image still exports: its layers come back from the blobs.
  const out = join(root, '..', 'after-prune');
  const ex = await kiln(root, 'export', 'kiln.test/kept:1', '-o', `type=local,dest=${out}`);
  assert.equal(ex.code, 0, ex.stderr);
  assert.ok((await readdir(out)).includes('file'));

  // An earlier build's --explain records, with a COPY's file list beside one.
  const explained = join(root, 'explain', 'a'.repeat(64));
  await mkdir(explained, { recursive: true });
  await writeFile(join(explained, 'b'.repeat(64)), '{"name":"[stage-0 2/2] COPY . /app","hasContent":true}');
  await writeFile(join(explained, `${'b'.repeat(64)}.content`), '[]');
  const all = await kiln(root, 'prune', '--all');
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(await readdir(join(root, 'explain')), [], '--all drops --explain records too');
  assert.deepEqual(await readdir(join(root, 'snapshots')), []);
  assert.equal((await kiln(root, 'store', 'verify')).code, 0);
  await rm(out, { recursive: true, force: true });

  for (const [flags, re] of [
    [['--keep-storage', 'lots'], /--keep-storage: "lots" is not a size/],
    [['--filter', 'until=soon'], /is not a duration/],
    [['--filter', 'label=x'], /only until=DURATION/],
  ] as const) {
    const bad = await kiln(root, 'prune', ...flags);
    assert.equal(bad.code, 2, flags.join(' '));
    assert.match(bad.stderr, re);
  }
});

test('kiln prune drops COPY lineage records whose snapshot is gone, and keeps the others', async () => {
  const { root, store, cached, orphan } = await setup();
  await store.setLineage(sha256('lineage of cached'), cached);
  await store.setLineage(sha256('lineage of orphan'), orphan);
  const r = await kiln(root, 'prune');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await store.getLineage(sha256('lineage of cached')), cached);
  assert.deepEqual(await readdir(join(root, 'lineage')), [sha256('lineage of cached').slice('sha256:'.length)]);
});
