// A failing step stops the build: steps running beside it are cancelled (not waited for), the
// error names the failing line, and nothing is left in the store's staging area.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { busyboxStore, writeTree, buildJson, BASE_REF } from './fixture.js';

// At the top level, not in before(): tempDir's cleanup would run when the hook ends.
const root = await busyboxStore();

test('a failed step cancels the steps running beside it', async () => {
  const ctx = await tempDir('kiln-fail-');
  await writeTree(ctx, {
    Dockerfile: `FROM ${BASE_REF} AS slow\nRUN sleep 60 && echo slow > /slow\nFROM ${BASE_REF} AS bad\nRUN sleep 1 && exit 3\nFROM ${BASE_REF}\nCOPY --from=slow /slow /slow\nCOPY --from=bad /etc/passwd /x\n`,
  });
  const r = await buildJson(root, ctx, ['--jobs', '2']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Dockerfile:4/);
  const slow = r.steps.filter((s) => s.name.includes('sleep 60'));
  assert.ok(slow.some((s) => s.state === 'running'), 'the slow step had started');
  assert.equal(slow.at(-1)?.state, 'cancelled');
  const bad = r.steps.filter((s) => s.name.includes('exit 3'));
  assert.equal(bad.at(-1)?.state, 'error');
  assert.deepEqual(await readdir(join(root, 'tmp')), []);
});
