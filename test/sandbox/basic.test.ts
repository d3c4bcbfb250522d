import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeFixture, describeTree, type Fixture } from './fixture.js';

let fx: Fixture;
before(async () => {
  fx = await makeFixture();
});
after(() => fx.dispose());

test('a RUN that writes a file gives a snapshot with just that file', async () => {
  const r = await fx.run('echo hello > /tmp/x; mkdir -p /opt/app; echo hi > /opt/app/y');
  assert.ok(r.snapshot);
  assert.deepEqual(await describeTree(fx.store.snapshotFs(r.snapshot)), [
    'opt/',
    'opt/app/',
    'opt/app/y = "hi\\n"',
    'tmp/',
    'tmp/x = "hello\\n"',
  ]);
});

test('a RUN that changes nothing gives no snapshot, and its output reaches onOutput', async () => {
  const r = await fx.run('echo out; echo err >&2; true');
  assert.equal(r.snapshot, null);
  assert.match(r.output, /out/);
  assert.match(r.output, /err/);
});
