// A blob file that starts with another blob's head (store/headed-blob-file.ts): the head copied
// in the kernel, or in the process where the kernel will not copy across filesystems, and the
// rest written after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HeadedBlobFile } from '../../src/store/headed-blob-file.js';
import { tempDir } from '../helpers/tmp.js';

async function headed(headPath: string, bytes: number, rest: Buffer[], out: string): Promise<Buffer> {
  await pipeline(Readable.from(rest), new HeadedBlobFile(out, { path: headPath, bytes: () => bytes }));
  return readFile(out);
}

test('the head of another blob, then the rest', async () => {
  const dir = await tempDir('kiln-headed-');
  const previous = randomBytes(3 << 20);
  await writeFile(join(dir, 'previous'), previous);
  const rest = [randomBytes(1000), randomBytes(70_000)];
  const head = (2 << 20) + 123;
  const got = await headed(join(dir, 'previous'), head, rest, join(dir, 'new'));
  assert.ok(got.equals(Buffer.concat([previous.subarray(0, head), ...rest])));
  // No head at all: the rest alone.
  assert.ok((await headed(join(dir, 'previous'), 0, rest, join(dir, 'new0'))).equals(Buffer.concat(rest)));
});

test('a head on another filesystem is copied in the process', async (t) => {
  let shm: string;
  try {
    shm = mkdtempSync('/dev/shm/kiln-headed-');
  } catch {
    t.skip('no /dev/shm here');
    return;
  }
  try {
    const dir = await tempDir('kiln-headed-');
    const previous = randomBytes((1 << 20) * 2 + 777);
    await writeFile(join(shm, 'previous'), previous);
    const rest = [Buffer.from('the rest')];
    const got = await headed(join(shm, 'previous'), previous.length, rest, join(dir, 'new'));
    assert.ok(got.equals(Buffer.concat([previous, ...rest])));
  } finally {
    rmSync(shm, { recursive: true, force: true });
  }
});

test('a head shorter than asked for fails the write', async () => {
  const dir = await tempDir('kiln-headed-');
  await writeFile(join(dir, 'previous'), randomBytes(4096));
  await assert.rejects(headed(join(dir, 'previous'), 8192, [Buffer.from('x')], join(dir, 'new')), /shorter than the 8192 bytes/);
});
