// Cache hits and misses through the CLI, on the three peer benchmark cases: a rebuild with no
// change runs nothing, and after one context file changes exactly the steps downstream of it run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { tempDir } from '../helpers/tmp.js';
import { busyboxStore, writeTree, peersCase, buildJson, ranSteps, cachedSteps, assertOk, readIid, BASE_REF } from './fixture.js';

// At the top level, not in before(): tempDir's cleanup would run when the hook ends.
const root = await busyboxStore();

const BASE = ['--build-arg', `BASE=${BASE_REF}`];

async function caseContext(name: 'runsteps' | 'copyheavy' | 'multistage', files: Record<string, string | Buffer>): Promise<string> {
  const ctx = await tempDir(`kiln-${name}-`);
  await writeTree(ctx, { Dockerfile: await peersCase(name), ...files });
  return ctx;
}

/** Builds three times: cold, unchanged, after `change`; returns the last two runs. */
async function rebuilds(ctx: string, change: () => Promise<void>) {
  const iid = join(await tempDir('kiln-iid-'), 'iid');
  const cold = await buildJson(root, ctx, [...BASE, '--iidfile', iid]);
  assertOk(cold);
  const first = await readIid(iid);
  const same = await buildJson(root, ctx, [...BASE, '--iidfile', iid]);
  assertOk(same);
  assert.equal(await readIid(iid), first, 'a rebuild with no change gives the same image');
  await change();
  const changed = await buildJson(root, ctx, [...BASE, '--iidfile', iid]);
  assertOk(changed);
  assert.notEqual(await readIid(iid), first, 'a changed input gives a new image');
  return { cold, same, changed };
}

test('runsteps: no change runs nothing; app/config.txt changed reruns its COPY and the RUNs after it', async () => {
  const ctx = await caseContext('runsteps', { 'app/config.txt': 'config v0\n' });
  const { cold, same, changed } = await rebuilds(ctx, () => writeFile(join(ctx, 'app/config.txt'), 'config v1\n'));
  assert.equal(ranSteps(cold).length, 7);
  assert.deepEqual(ranSteps(same), []);
  assert.equal(cachedSteps(same).length, 7);
  assert.deepEqual(ranSteps(changed), [
    'COPY app/config.txt /bench/config.txt',
    'RUN cat /bench/config.txt /bench/one.txt > /bench/derived.txt && md5sum /bench/derived.txt > /bench/derived.md5',
    'RUN echo done > /bench/done.txt',
  ]);
  assert.equal(cachedSteps(changed).length, 4);
});

test('copyheavy: one small file changed reruns COPY small/ and the RUN, not COPY big/', async () => {
  const files: Record<string, string | Buffer> = {};
  for (let i = 1; i <= 3; i++) files[`big/blob${i}.bin`] = randomBytes(256 * 1024);
  for (let d = 0; d < 10; d++) {
    for (let f = 0; f < 20; f++) files[`small/d${String(d).padStart(2, '0')}/f${String(d * 100 + f).padStart(5, '0')}.txt`] = `file ${d}/${f}\n`;
  }
  const ctx = await caseContext('copyheavy', files);
  const { same, changed } = await rebuilds(ctx, () => writeFile(join(ctx, 'small/d05/f00507.txt'), 'edited\n'));
  assert.deepEqual(ranSteps(same), []);
  assert.deepEqual(ranSteps(changed), [
    'COPY small/ /data/small/',
    'RUN find /data -type f | wc -l > /data/count.txt && cat /data/count.txt',
  ]);
  assert.deepEqual(cachedSteps(changed), ['COPY big/ /data/big/']);
});

test('multistage: a/input.txt changed reruns stage-a and the final stage from COPY --from=stage-a on', async () => {
  const ctx = await caseContext('multistage', { 'a/input.txt': 'input a v0\n', 'b/input.txt': 'input b v0\n' });
  const { same, changed } = await rebuilds(ctx, () => writeFile(join(ctx, 'a/input.txt'), 'input a v1\n'));
  assert.deepEqual(ranSteps(same), []);
  assert.equal(cachedSteps(same).length, 7);
  const ran = ranSteps(changed);
  assert.equal(ran.length, 5, ran.join('\n'));
  assert.ok(ran.includes('COPY a/ /src/'));
  assert.ok(ran.some((s) => s.startsWith('RUN mkdir -p /out') && s.includes('"a $i"')));
  assert.ok(ran.includes('COPY --from=stage-a /out /a'));
  assert.ok(ran.includes('COPY --from=stage-b /out /b'));
  assert.ok(ran.includes('RUN ls /a /b | wc -l > /count.txt && cat /count.txt'));
  const cached = cachedSteps(changed);
  assert.ok(cached.includes('COPY b/ /src/'));
  assert.ok(cached.some((s) => s.includes('"b $i"')), 'stage-b RUN stays cached');
});
