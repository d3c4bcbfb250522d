// The layer hash of image/layer-hash.ts: OpenSSL's SHA-256 with states saved every
// CHECKPOINT_BYTES, and taken up again for a tar that starts as a previous one did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { ResumableSha256, resumableSha256Available } from '../../src/util/sha256-resumable.js';
import { CHECKPOINT_BYTES, layerHasher, type HashCheckpoint, type LayerHasher, type PreviousTar } from '../../src/util/tar/hash.js';
import { tempDir } from '../helpers/tmp.js';

const MB = 1 << 20;

function sha(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Streams `data` through the hasher in chunks of odd sizes, as a tar writer hands them on. */
async function run(hasher: LayerHasher, data: Buffer): Promise<void> {
  const sizes = [MB + 17, 3 * MB - 5, 511, 2 * MB];
  const chunks: Buffer[] = [];
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, data.length - off);
    chunks.push(data.subarray(off, off + n));
    off += n;
  }
  await pipeline(Readable.from(chunks), hasher.stream, new Writable({ write: (_c, _e, cb) => cb() }));
}

async function hashed(data: Buffer, previous?: PreviousTar): Promise<{ digest: string; checkpoints: HashCheckpoint[]; hashed: number }> {
  const h = layerHasher(previous);
  assert.ok(h, 'OpenSSL SHA-256 not reachable');
  await run(h, data);
  assert.equal(h.size(), data.length);
  return { digest: await h.digest(), checkpoints: await h.checkpoints(), hashed: h.hashed() };
}

async function previousOf(data: Buffer): Promise<PreviousTar> {
  const path = join(await tempDir('kiln-layer-hash-'), 'prev.tar');
  writeFileSync(path, data);
  const r = await hashed(data);
  return { path, size: data.length, digest: r.digest as `sha256:${string}`, checkpoints: r.checkpoints };
}

test('OpenSSL SHA-256 is reachable in this Node', () => {
  assert.ok(resumableSha256Available());
});

test('a saved state resumes to the digest of the whole', async () => {
  const data = randomBytes(3 * MB + 123);
  const h = ResumableSha256.start()!;
  h.update(data.subarray(0, MB + 7));
  const state = await h.saveState();
  h.update(data.subarray(MB + 7));
  assert.equal(await h.digest(), sha(data));
  const again = ResumableSha256.resume(state, MB + 7)!;
  again.update(data.subarray(MB + 7));
  assert.equal(await again.digest(), sha(data));
  assert.equal(ResumableSha256.resume(state.subarray(1), 0), undefined, 'a state of the wrong size is refused');
});

test('small updates queued together, large ones alone, save points between them: every state and the digest are exact', async () => {
  // Headers, small files and large pieces in the order a tar hands them over, queued faster than
  // the pool hashes them, so small ones are batched; each save point sees exactly what preceded it.
  const data = randomBytes(12 * MB + 4321);
  const sizes = [512, 1, 700, 64 << 10, 2 * MB, 512, 3, MB, 9 * 1024, 8 * MB + 1];
  const h = ResumableSha256.start()!;
  const saves: Array<{ at: number; state: Promise<Buffer> }> = [];
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, data.length - off);
    h.update(data.subarray(off, off + n));
    off += n;
    if (i % 3 === 0) saves.push({ at: off, state: h.saveState() });
  }
  assert.equal(await h.digest(), sha(data));
  for (const { at, state } of saves) {
    const resumed = ResumableSha256.resume(await state, at)!;
    resumed.update(data.subarray(at));
    assert.equal(await resumed.digest(), sha(data), `the state saved at ${at}`);
  }
});

test('a tar is hashed whole, with a state saved at every checkpoint boundary', async () => {
  const data = randomBytes(2 * CHECKPOINT_BYTES + 5 * MB);
  const r = await hashed(data);
  assert.equal(r.digest, sha(data));
  assert.deepEqual(r.checkpoints.map((c) => c.offset), [CHECKPOINT_BYTES, 2 * CHECKPOINT_BYTES]);
  assert.equal(r.hashed, data.length);
  // Each state, resumed over the rest, gives the whole digest.
  for (const c of r.checkpoints) {
    const h = ResumableSha256.resume(Buffer.from(c.state, 'base64'), c.offset)!;
    h.update(data.subarray(c.offset));
    assert.equal(await h.digest(), sha(data));
  }
});

test('a tar that changes after the first checkpoint hashes only from there', async () => {
  const old = randomBytes(2 * CHECKPOINT_BYTES + 5 * MB);
  const prev = await previousOf(old);
  const changedAt = CHECKPOINT_BYTES + 3 * MB + 11;
  const next = Buffer.concat([old.subarray(0, changedAt), Buffer.from('changed'), old.subarray(changedAt + 7), randomBytes(MB)]);
  const r = await hashed(next, prev);
  assert.equal(r.digest, sha(next));
  assert.equal(r.hashed, next.length - CHECKPOINT_BYTES, 'the bytes before the first saved state were hashed again');
  assert.equal(r.checkpoints[0]!.offset, CHECKPOINT_BYTES);
  assert.equal(r.checkpoints[0]!.state, prev.checkpoints[0]!.state, 'the shared checkpoint is kept');
  assert.equal(r.checkpoints[1]!.offset, 2 * CHECKPOINT_BYTES);
  assert.notEqual(r.checkpoints[1]!.state, prev.checkpoints[1]!.state, 'a checkpoint after the change was kept');
  // The next rebuild resumes from this one's states.
  const third = Buffer.from(next);
  third[third.length - 1] ^= 1;
  const path = join(await tempDir('kiln-layer-hash-'), 'next.tar');
  writeFileSync(path, next);
  const r3 = await hashed(third, { path, size: next.length, digest: r.digest as `sha256:${string}`, checkpoints: r.checkpoints });
  assert.equal(r3.digest, sha(third));
  assert.equal(r3.hashed, third.length - 2 * CHECKPOINT_BYTES);
});

test('a tar equal to the previous one is not hashed at all; shorter and longer ones are', async () => {
  const old = randomBytes(CHECKPOINT_BYTES + 2 * MB);
  const prev = await previousOf(old);
  const same = await hashed(Buffer.from(old), prev);
  assert.equal(same.digest, prev.digest);
  assert.equal(same.hashed, 0);
  assert.deepEqual(same.checkpoints, prev.checkpoints);

  const shorter = old.subarray(0, CHECKPOINT_BYTES + MB);
  const s = await hashed(shorter, prev);
  assert.equal(s.digest, sha(shorter));
  assert.equal(s.hashed, MB);

  const longer = Buffer.concat([old, randomBytes(3 * MB)]);
  const l = await hashed(longer, prev);
  assert.equal(l.digest, sha(longer));
  assert.equal(l.hashed, longer.length - CHECKPOINT_BYTES);
});

test('a change before the first checkpoint hashes everything; a missing previous tar is ignored', async () => {
  const old = randomBytes(CHECKPOINT_BYTES + 2 * MB);
  const prev = await previousOf(old);
  const next = Buffer.from(old);
  next[100] ^= 0xff;
  const r = await hashed(next, prev);
  assert.equal(r.digest, sha(next));
  assert.equal(r.hashed, next.length);
  const gone = await hashed(next, { ...prev, path: join(await tempDir('kiln-layer-hash-'), 'missing.tar') });
  assert.equal(gone.digest, sha(next));
});
