// The digest table of a fetched context (a folder of tmp/) goes with its folder: when a build is
// killed, the next kiln that opens the store sweeps both.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { FileHashTable } from '../../src/store/filehash-cache.js';
import { processAlive } from '../../src/store/sweep.js';
import { tempDir } from '../helpers/tmp.js';

async function tableOf(store: Store, folder: string): Promise<void> {
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'f.txt'), 'f\n');
  const t = await FileHashTable.open(store, folder);
  await t.digest('f.txt', join(folder, 'f.txt'), statSync(join(folder, 'f.txt')));
  await t.save();
}

test('a killed build\'s fetched context and its digest table are swept together; other tables stay', async () => {
  const root = await tempDir();
  const store = await Store.open(root);
  // A pid no process has: a build that was killed.
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  let dead = pidMax - 1;
  while (processAlive(dead)) dead--;
  const entry = `${dead}-0123456789ab-git-context`;
  await tableOf(store, store.path('tmp', entry, 'subdir'));
  await tableOf(store, join(await tempDir(), 'ctx'));
  const tables = readdirSync(store.path('filehash')).sort();
  assert.equal(tables.length, 2);
  assert.equal(tables.filter((t) => t.startsWith(`tmp-${entry}-`)).length, 1, tables.join(' '));

  await Store.open(root);
  assert.deepEqual(readdirSync(store.path('tmp')), []);
  assert.deepEqual(readdirSync(store.path('filehash')), tables.filter((t) => !t.startsWith('tmp-')));
});
