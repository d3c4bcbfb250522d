// util/tar/parallel-gzip.ts: gzip made block by block on the thread pool is one valid gzip
// stream (for Node and for GNU gzip), its bytes depend only on the input and the level, and
// blocks still find matches across the cut.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GZIP_BLOCK, parallelGzip } from '../../src/util/tar/parallel-gzip.js';

async function gzip(input: Buffer, level = -1, piece = 64 << 10): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let off = 0; off < input.length; off += piece) pieces.push(input.subarray(off, off + piece));
  const out: Buffer[] = [];
  for await (const c of Readable.from(pieces).pipe(parallelGzip(level))) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** Text-like bytes from a fixed seed: words drawn by a linear congruential generator. */
function words(bytes: number, seed = 7): Buffer {
  const vocabulary = ['layer', 'image', 'kiln', 'tar', 'gzip', 'block', 'the', 'of', 'a', 'snapshot', 'digest', '\n'];
  const parts: string[] = [];
  let x = seed;
  for (let n = 0; n < bytes; ) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const w = vocabulary[(x >>> 16) % vocabulary.length]!;
    parts.push(w, ' ');
    n += w.length + 1;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

test('parallelGzip: one gzip stream that Node and GNU gzip read back, at every length around a block', async () => {
  for (const n of [0, 1, 1000, GZIP_BLOCK - 1, GZIP_BLOCK, GZIP_BLOCK + 1, 3 * GZIP_BLOCK + 12345]) {
    const input = n % 2 === 0 ? words(n) : randomBytes(n);
    const out = await gzip(input);
    assert.ok(gunzipSync(out).equals(input), `${n} bytes: Node reads them back`);
    const gnu = spawnSync('gzip', ['-dc'], { input: out, maxBuffer: 1 << 30 });
    assert.equal(gnu.status, 0, `${n} bytes: ${gnu.stderr.toString()}`);
    assert.ok(gnu.stdout.equals(input), `${n} bytes: GNU gzip reads them back`);
  }
});

test('parallelGzip: the bytes depend on the input and the level only', async () => {
  const input = words(2 * GZIP_BLOCK + 5000);
  const a = await gzip(input, -1, 64 << 10);
  const b = await gzip(input, -1, 4099);
  const c = await gzip(input, -1, input.length);
  assert.ok(a.equals(b) && a.equals(c), 'any chunking of the input gives the same bytes');
  assert.ok((await gzip(input, 6)).equals(a), 'the default level is 6');
  const fast = await gzip(input, 1);
  assert.ok(!fast.equals(a));
  assert.equal(fast[8], 4, 'level 1 says so in the header, as zlib does');
  const stored = await gzip(input, 0);
  assert.ok(stored.length > input.length && gunzipSync(stored).equals(input));
  // Pinned: a change of block size, window or framing changes every gzip layer digest kiln makes.
  assert.equal(createHash('sha256').update(a).digest('hex'), '4c5c4ab9e0546fc62ebebca434c1badaa1f13fd47a6d4e7da704fb5392114689');
});

test('parallelGzip: each block is primed with the bytes before it, so matches cross the cut', async () => {
  // A 20 KiB random pattern repeated over four blocks: with the dictionary, every block after
  // the first refers back to it; without, each would store the pattern again.
  const pattern = randomBytes(20 << 10);
  const input = Buffer.concat(Array.from({ length: Math.ceil((4 * GZIP_BLOCK) / pattern.length) }, () => pattern));
  const ours = await gzip(input);
  const serial = gzipSync(input);
  assert.ok(gunzipSync(ours).equals(input));
  assert.ok(ours.length < serial.length + 4096, `${ours.length} bytes against one-thread gzip's ${serial.length}`);
});

test('parallelGzip: blocks that do not compress are stored, not deflated; a block that does is not', async () => {
  // Random bytes: stored blocks cost 5 bytes a 64 KiB (0.008%); deflated at level 6 they came out
  // 0.03% bigger than the input, after ~9 times the work.
  const random = randomBytes(3 * GZIP_BLOCK);
  const out = await gzip(random);
  assert.ok(gunzipSync(out).equals(random));
  assert.ok(out.length - random.length < random.length * 0.0001, `${out.length - random.length} bytes over the input`);
  // One compressible stretch under a sample is enough for the block to be deflated.
  const mixed = Buffer.from(random);
  words(64 << 10).copy(mixed, 0);
  const outMixed = await gzip(mixed);
  assert.ok(gunzipSync(outMixed).equals(mixed));
  assert.ok(outMixed.length < out.length - 4096, 'the first block was deflated');
});
