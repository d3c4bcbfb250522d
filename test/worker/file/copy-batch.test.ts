// Plain files copied in batches off the event loop (src/worker/file/copy-batch.ts and
// native/files/copyfiles.c): content, owner, mode and times as an inline copy gives them; a failure names
// the file; and the diff writer never looks at, replaces or links to a file still in a batch.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CopyBatch } from '../../../src/worker/file/copy-batch.js';
import { DiffWriter } from '../../../src/worker/file/diff-writer.js';
import { tempDir } from '../../helpers/tmp.js';

test('a batch copies content, owner, mode (setuid too) and mtime', async () => {
  const dir = await tempDir('kiln-batch-');
  await writeFile(join(dir, 'a'), 'alpha');
  await writeFile(join(dir, 'big'), Buffer.alloc(3 << 20, 7));
  await writeFile(join(dir, 'empty'), '');
  const batch = CopyBatch.open(1_234_567);
  assert.ok(batch, 'native/build/libkiln-files.so is built with the helper');
  batch.add(join(dir, 'a'), join(dir, 'a2'), 5, { uid: 1000, gid: 50, mode: 0o4755 });
  batch.add(join(dir, 'big'), join(dir, 'big2'), 3 << 20, { uid: 0, gid: 0, mode: 0o600 });
  batch.add(join(dir, 'empty'), join(dir, 'empty2'), 0, { uid: 0, gid: 0, mode: 0o644 });
  assert.ok(batch.has(join(dir, 'a2')));
  await batch.settle();
  assert.ok(!batch.has(join(dir, 'a2')));
  const a = await stat(join(dir, 'a2'));
  assert.equal(await readFile(join(dir, 'a2'), 'utf8'), 'alpha');
  assert.deepEqual([a.uid, a.gid, a.mode & 0o7777, a.mtimeMs, a.atimeMs], [1000, 50, 0o4755, 1_234_567_000, 1_234_567_000]);
  assert.ok((await readFile(join(dir, 'big2'))).equals(Buffer.alloc(3 << 20, 7)));
  assert.equal((await stat(join(dir, 'big2'))).mode & 0o7777, 0o600);
  assert.equal((await stat(join(dir, 'empty2'))).size, 0);
});

test('many files go in several batches, and all arrive', async () => {
  const dir = await tempDir('kiln-batch-');
  await mkdir(join(dir, 'src'));
  await mkdir(join(dir, 'dst'));
  const batch = CopyBatch.open(0)!;
  for (let i = 0; i < 700; i++) {
    await writeFile(join(dir, 'src', `f${i}`), `file ${i}\n`);
    batch.add(join(dir, 'src', `f${i}`), join(dir, 'dst', `f${i}`), 8, { uid: 0, gid: 0, mode: 0o644 });
  }
  await batch.settle();
  assert.equal((await readdir(join(dir, 'dst'))).length, 700);
  assert.equal(await readFile(join(dir, 'dst', 'f699'), 'utf8'), 'file 699\n');
});

test('a source that is gone fails the batch, naming it', async () => {
  const dir = await tempDir('kiln-batch-');
  const batch = CopyBatch.open(0)!;
  batch.add(join(dir, 'missing'), join(dir, 'out'), 1, { uid: 0, gid: 0, mode: 0o644 });
  await assert.rejects(batch.settle(), (err: Error) => err.message.includes(`open ${join(dir, 'missing')}: No such file or directory`));
  // Abandoning waits for what runs and drops the rest.
  const other = CopyBatch.open(0)!;
  await writeFile(join(dir, 'x'), 'x');
  other.add(join(dir, 'x'), join(dir, 'y'), 1, { uid: 0, gid: 0, mode: 0o644 });
  await other.abandon();
  assert.ok(!other.has(join(dir, 'y')));
});

test('the writer settles a pending file before it replaces it or links to it', async () => {
  const dir = await tempDir('kiln-batch-');
  const stage = join(dir, 'stage');
  await mkdir(stage);
  await writeFile(join(dir, 'one'), 'first');
  await writeFile(join(dir, 'two'), 'second');
  const w = new DiffWriter(stage, [], 0);
  const meta = { uid: 0, gid: 0, mode: 0o644 };
  await w.ensureDir('/d', meta);
  await w.writeFileFrom('/d/f', join(dir, 'one'), meta, 5);
  // The same destination again (a later source of the same COPY): the later one wins.
  await w.writeFileFrom('/d/f', join(dir, 'two'), meta, 6);
  await w.writeHardlink('/d/g', '/d/f');
  await w.finish();
  assert.equal(await readFile(join(stage, 'd/f'), 'utf8'), 'second');
  assert.equal((await stat(join(stage, 'd/g'))).ino, (await stat(join(stage, 'd/f'))).ino);
  // A directory where a pending file is: the same refusal as when the file is on disk.
  const w2 = new DiffWriter(join(dir, 'stage'), [], 0);
  await w2.writeFileFrom('/d/h', join(dir, 'one'), meta, 5);
  await assert.rejects(w2.ensureDir('/d/h', meta), /cannot copy to non-directory: \/d\/h is a file/);
});
