// util/hash-file.ts: the same sha256 whether a file or stream is hashed in place or on the
// worker thread, chunk boundaries anywhere; a missing file is an error with its code.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashFile, streamHasher } from '../../src/util/hash-file.js';
import { tempDir } from '../helpers/tmp.js';

const dir = await tempDir('kiln-hashfile-');

function sha(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

for (const size of [0, 1000, (2 << 20) + 3, (9 << 20) + 17]) {
  test(`a file of ${size} bytes hashes to its sha256`, async () => {
    const data = randomBytes(size);
    const path = join(dir, `f${size}`);
    await writeFile(path, data);
    assert.deepEqual(await hashFile(path, size), { digest: sha(data), size });
    assert.deepEqual(await hashFile(path), { digest: sha(data), size }, 'size unknown: the worker');
  });

  test(`a stream of ${size} bytes in uneven chunks hashes to its sha256`, async () => {
    const data = randomBytes(size);
    const h = streamHasher();
    for (let off = 0, step = 1; off < size; off += step, step = (step * 7 + 1) % 1_500_000 || 1) h.update(data.subarray(off, Math.min(size, off + step)));
    assert.deepEqual(await h.digest(), { digest: sha(data), size });
  });
}

test('several streams at once on the worker keep their own state', async () => {
  const a = randomBytes(6 << 20);
  const b = randomBytes(5 << 20);
  const ha = streamHasher();
  const hb = streamHasher();
  for (let off = 0; off < a.length; off += 1 << 20) {
    ha.update(a.subarray(off, off + (1 << 20)));
    if (off < b.length) hb.update(b.subarray(off, off + (1 << 20)));
  }
  const [da, db] = await Promise.all([ha.digest(), hb.digest()]);
  assert.equal(da.digest, sha(a));
  assert.equal(db.digest, sha(b));
});

test('a missing file is an error naming its code, on either thread', async () => {
  await assert.rejects(hashFile(join(dir, 'missing'), 10), { code: 'ENOENT' });
  await assert.rejects(hashFile(join(dir, 'missing')), { code: 'ENOENT' });
});
