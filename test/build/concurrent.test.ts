// Several kiln processes on one store: two different builds at once both succeed; the same
// build twice at once gives the same image (one waits on the other's steps).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { busyboxStore, writeTree, buildJson, assertOk, readIid, ranSteps, BASE_REF } from './fixture.js';

// At the top level, not in before(): tempDir's cleanup would run when the hook ends.
const root = await busyboxStore();

async function project(name: string, body: string): Promise<string> {
  const ctx = await tempDir(`kiln-conc-${name}-`);
  const files: Record<string, string> = {
    Dockerfile: `FROM ${BASE_REF}\nCOPY src/ /src/\nRUN ${body}\nRUN ls -R /src | wc -l > /count\n`,
  };
  for (let i = 0; i < 100; i++) files[`src/d${i % 5}/f${i}.txt`] = `${name} ${i}\n`;
  await writeTree(ctx, files);
  return ctx;
}

test('two different builds against one store at once both succeed', async () => {
  const a = await project('a', 'dd if=/dev/zero bs=1M count=32 2>/dev/null | sha256sum > /a.sum');
  const b = await project('b', 'dd if=/dev/zero bs=1M count=24 2>/dev/null | md5sum > /b.sum');
  const [ra, rb] = await Promise.all([buildJson(root, a, ['-t', 'conc:a']), buildJson(root, b, ['-t', 'conc:b'])]);
  assertOk(ra);
  assertOk(rb);
  assert.equal(ranSteps(ra).length, 3);
  assert.equal(ranSteps(rb).length, 3);
});

test('the same build twice at once gives identical digests, and each step runs once', async () => {
  const ctx = await project('same', 'for i in $(seq 1 200); do echo $i > /f$i; done && sleep 1');
  const out = await tempDir('kiln-conc-iid-');
  const [r1, r2] = await Promise.all(
    ['1', '2'].map((n) => buildJson(root, ctx, ['-t', `conc:same${n}`, '--iidfile', join(out, n)])),
  );
  assertOk(r1!);
  assertOk(r2!);
  assert.equal(await readIid(join(out, '1')), await readIid(join(out, '2')));
  // The key lock makes the second process wait and then find each step cached.
  const ran = [...ranSteps(r1!), ...ranSteps(r2!)].sort();
  assert.deepEqual(ran, ['COPY src/ /src/', 'RUN for i in $(seq 1 200); do echo $i > /f$i; done && sleep 1', 'RUN ls -R /src | wc -l > /count']);
});
