// Through the CLI: a big COPY layer records its hash states, and the rebuild after a change
// behind the first state (in tar order) writes a layer whose diffID is the sha256 of its blob,
// carrying the shared state over (image/layer-hash.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { runKiln } from '../helpers/kiln.js';
import { buildJson, assertOk, ranSteps, writeTree } from './fixture.js';
import { verifyStore } from './store-check.js';
import { CHECKPOINT_BYTES } from '../../src/util/tar/hash.js';
import type { SnapshotMeta } from '../../src/store/store.js';

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** COPY snapshots with saved hash states, oldest first. */
async function copySnapshots(root: string): Promise<SnapshotMeta[]> {
  const out: SnapshotMeta[] = [];
  for (const id of await readdir(join(root, 'snapshots'))) {
    const meta = JSON.parse(await readFile(join(root, 'snapshots', id, 'meta.json'), 'utf8')) as SnapshotMeta;
    if (meta.source === 'file' && meta.hashStates) out.push(meta);
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

test('a rebuilt big COPY layer resumes its hash and stays correct', async () => {
  const work = await tempDir('kiln-resume-');
  const ctx = join(work, 'ctx');
  const small: Record<string, string> = {};
  for (let i = 0; i < 20; i++) small[`small/f${String(i).padStart(2, '0')}`] = `small file ${i}\n`;
  // "big" sorts before "small": the change below comes after the first saved state.
  await writeTree(ctx, { Dockerfile: 'FROM scratch\nCOPY . /ctx/\n', 'big.bin': randomBytes(CHECKPOINT_BYTES + (4 << 20)), ...small });
  const root = join(work, 'store');

  const first = await buildJson(root, ctx);
  assertOk(first);
  const [a] = await copySnapshots(root);
  assert.ok(a, 'the first COPY layer recorded no hash states');
  assert.equal(a.hashStates![0]!.offset, CHECKPOINT_BYTES);
  assert.equal(await fileDigest(join(root, 'blobs', 'sha256', a.diffId!.slice(7))), a.diffId);

  await writeFile(join(ctx, 'small/f07'), 'changed\n');
  const second = await buildJson(root, ctx);
  assertOk(second);
  assert.deepEqual(ranSteps(second).map((s) => s.replace(/^\[[^\]]*\] /, '')), ['COPY . /ctx/']);
  const metas = await copySnapshots(root);
  assert.equal(metas.length, 2);
  const b = metas[1]!;
  assert.notEqual(b.diffId, a.diffId);
  assert.equal(await fileDigest(join(root, 'blobs', 'sha256', b.diffId!.slice(7))), b.diffId, 'the resumed diffID is not the blob\'s sha256');
  assert.equal(b.size, a.size);
  assert.deepEqual(b.hashStates, a.hashStates, 'the state before the change was not carried over');
  // The head shared with the previous layer was copied, not written: the layer is still the one
  // a build in a new store makes.
  const fresh = join(work, 'fresh-store');
  assertOk(await buildJson(fresh, ctx));
  const [scratch] = await copySnapshots(fresh);
  assert.equal(scratch!.diffId, b.diffId, 'the rebuilt layer differs from a layer made from scratch');

  // A change before the first state: the whole tar is hashed again, still right.
  const bytes = await readFile(join(ctx, 'big.bin'));
  bytes[10] ^= 0xff;
  await writeFile(join(ctx, 'big.bin'), bytes);
  assertOk(await buildJson(root, ctx));
  const c = (await copySnapshots(root))[2]!;
  assert.equal(await fileDigest(join(root, 'blobs', 'sha256', c.diffId!.slice(7))), c.diffId);
  assert.notEqual(c.hashStates![0]!.state, a.hashStates![0]!.state);
  await verifyStore(root);

  // A saved state that is not its layer's would make the next resumed diffID wrong: verify says so.
  const metaFile = join(root, 'snapshots', a.id, 'meta.json');
  await writeFile(metaFile, JSON.stringify({ ...a, hashStates: c.hashStates }));
  const r = await runKiln(['store', 'verify', '--root', root]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, new RegExp(`snapshot ${a.id}: the hash state saved at offset ${CHECKPOINT_BYTES} is not its layer's`));
});
