// A registry (behind a proxy that flips a byte) serves a corrupt blob: the pull fails naming
// the digest, and nothing of the image enters the store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { startRegistry, startProxy } from '../helpers/registry.js';
import { Store } from '../../src/store/store.js';
import { pushImage } from '../../src/registry/push.js';
import { layerSnapshotId } from '../../src/image/load.js';
import { busyboxLayer, fileLayer, imageOf, storeImage } from './fixtures.js';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { kilnBin } from '../helpers/paths.js';

const reg = await startRegistry();
const good = await fileLayer('good', 'fine\n');
const bad = await fileLayer('bad', 'x'.repeat(200_000));
const img = imageOf([good, bad]);
const src = await Store.open(await tempDir('kiln-store-'));
await storeImage(src, img);
await pushImage(src, img.manifest.digest, `${reg.host}/corrupt/img:1`);
const proxy = await startProxy(reg.host, { corruptBlob: (d) => d === bad.digest });
let breaks = 0;
const flaky = await startProxy(reg.host, { breakBlob: (d) => d === bad.digest && breaks++ < 1 });

test('a flipped byte in a layer fails the pull, names the digest, and stores nothing of it', async () => {
  const root = await tempDir('kiln-store-');
  const r = await runKiln(['pull', '--root', root, `${proxy.host}/corrupt/img:1`]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`blob ${bad.digest} from ${proxy.host} is corrupt`));
  assert.ok(proxy.requests.some((q) => q.url.endsWith(`/blobs/${bad.digest}`)), 'the blob went through the proxy');

  const store = await Store.open(root);
  assert.equal(await store.hasBlob(bad.digest), false);
  assert.equal(await store.hasBlob(img.manifest.digest), false, 'no manifest promising what is missing');
  assert.deepEqual(await store.listRefs(), []);
  assert.deepEqual(await readdir(join(root, 'tmp')), [], 'no staging files left');

  // The same pull straight from the registry works: the store was left usable.
  const ok = await runKiln(['pull', '--root', root, `${reg.host}/corrupt/img:1`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((await store.getRef(`${reg.host}/corrupt/img:1`))?.digest, img.manifest.digest);
});

test('a connection cut in the middle of a blob is retried and the pull completes', async () => {
  const root = await tempDir('kiln-store-');
  const r = await runKiln(['pull', '--root', root, `${flaky.host}/corrupt/img:1`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(breaks, 2, 'the first GET was cut, the second went through');
  const store = await Store.open(root);
  assert.equal(await store.hasBlob(bad.digest), true);
  assert.deepEqual(await readdir(join(root, 'tmp')), []);
});

// A build unpacks each layer while it downloads (image/load.ts unpackWhileDownloading): the
// unpacking must neither commit a layer the download then refuses, nor leave anything behind.
test('kiln build FROM an image whose layer arrives corrupt fails naming the blob, with no layer snapshot or scratch left; a cut download is retried and the build sees the whole layer', async () => {
  const ctx = await tempDir('kiln-ctx-');
  const build = async (host: string, root: string) => {
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${host}/corrupt/img:1\nCOPY Dockerfile /copied\n`);
    return runKiln(['build', '--root', root, '--progress', 'plain', '-o', `type=local,dest=${join(root, '..', 'out')}`, ctx]);
  };
  const root = join(await tempDir('kiln-bstore-'), 'store');
  const r = await build(proxy.host, root);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`blob ${bad.digest} from ${proxy.host} is corrupt`));
  const store = await Store.open(root);
  assert.equal((await store.listSnapshots()).includes(layerSnapshotId(bad.diffId)), false);
  assert.equal(await store.hasBlob(bad.digest), false);
  assert.deepEqual(await readdir(join(root, 'tmp')), []);

  breaks = 0;
  const root2 = join(await tempDir('kiln-bstore-'), 'store');
  const ok = await build(flaky.host, root2);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(breaks, 2, 'the first GET of the big layer was cut');
  assert.equal(await readFile(join(root2, '..', 'out', 'bad'), 'utf8'), 'x'.repeat(200_000));
  assert.equal(await readFile(join(root2, '..', 'out', 'good'), 'utf8'), 'fine\n');
  assert.deepEqual(await readdir(join(root2, 'tmp')), []);
});

test('Ctrl-C while a base image downloads and unpacks: exit 130 at once, no layer snapshot, nothing in tmp/, the store verifies', async () => {
  const big = await busyboxLayer();
  const slowImg = imageOf([big, good]);
  await storeImage(src, slowImg);
  await pushImage(src, slowImg.manifest.digest, `${reg.host}/slow/img:1`);
  // About 4 s to send the busybox layer.
  const slow = await startProxy(reg.host, { throttleBlob: (d) => (d === big.digest ? Math.ceil(big.bytes.length / 4) : undefined) });
  const ctx = await tempDir('kiln-ctx-');
  await writeFile(join(ctx, 'Dockerfile'), `FROM ${slow.host}/slow/img:1\nCOPY Dockerfile /copied\n`);
  const root = join(await tempDir('kiln-slow-'), 'store');
  const child = spawn(kilnBin, ['build', '--root', root, '--progress', 'plain', ctx], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 200 && !slow.requests.some((q) => q.url.endsWith(`/blobs/${big.digest}`)); i++) await sleep(25);
  await sleep(800); // part of the layer is in, and unpacked
  const pressed = Date.now();
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr);
  assert.ok(Date.now() - pressed < 2500, `kiln took ${Date.now() - pressed} ms to stop`);
  assert.match(stderr, /build cancelled \(SIGINT\)/);
  const store = await Store.open(root);
  assert.equal((await store.listSnapshots()).includes(layerSnapshotId(big.diffId)), false);
  assert.equal(await store.hasBlob(big.digest), false);
  assert.deepEqual(await readdir(join(root, 'tmp')), []);
  const verify = await runKiln(['store', 'verify', '--root', root]);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});
