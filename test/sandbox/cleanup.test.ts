// Whatever ends a RUN, nothing of it stays: no process, no mount, no cgroup, no scratch folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makeFixture, type Fixture } from './fixture.js';
import { discoverHierarchies } from '../../src/worker/sandbox/cgroups.js';
import { sweepStaleSandboxes } from '../../src/worker/exec/index.js';
import { eventually, hostProcesses, mountsMentioning, ourHelpers } from './procs.js';

let fx: Fixture;
before(async () => {
  fx = await makeFixture();
});
after(() => fx.dispose());

const running = (marker: string) => hostProcesses().filter((p) => p.cmdline.some((a) => a.includes(marker)));

function assertNothingLeft(marker: string): Promise<void> {
  assert.deepEqual(mountsMentioning(fx.store.root), []);
  assert.deepEqual(readdirSync(fx.store.path('tmp')), []);
  return eventually(() => running(marker).length === 0 && ourHelpers().length === 0, `processes of ${marker} remain`);
}

test('aborting the signal ends a running step and everything it started', async () => {
  const ac = new AbortController();
  const marker = 'abort-marker-7e1';
  const p = fx.run(`sh -c 'sleep 600 & sleep 600 & wait' ${marker}`, { ctx: { signal: ac.signal }, limits: { pids: 50 } });
  await eventually(() => running(marker).length > 0, 'the step did not start');
  ac.abort();
  await assert.rejects(p, /RUN aborted/);
  await assertNothingLeft(marker);
});

test('kill -9 of the helper takes the step with it', async () => {
  const marker = 'kill9-marker-3c5';
  const p = fx.run(`sh -c 'sleep 600 & sleep 600 & wait' ${marker}`);
  await eventually(() => running(marker).length > 0 && ourHelpers().length === 1, 'the step did not start');
  process.kill(ourHelpers()[0]!.pid, 'SIGKILL');
  await assert.rejects(p, /sandbox helper killed by SIGKILL/);
  await assertNothingLeft(marker);
});

test('a RUN that fails to set up leaves nothing either', async () => {
  await assert.rejects(fx.run('true', { op: { mounts: [{ type: 'bind', from: 1, source: 'nope', target: '/x', readwrite: false }] },
    inputs: [{ kind: 'state', layers: ['busybox'] }, { kind: 'context', dir: fx.store.path('no-such-context'), excludePatterns: [] }] }), /sandbox: /);
  await assertNothingLeft('never-started');
});

test('while a step runs, its overlay workdir already lost the volatile markers (only work/ is left for after it)', async () => {
  const ac = new AbortController();
  const marker = 'markers-marker-91d';
  const p = fx.run(`sleep 600; echo ${marker}`, { ctx: { signal: ac.signal } });
  await eventually(() => running(marker).length > 0, 'the step did not start');
  const steps = readdirSync(fx.store.path('tmp')).filter((n) => n.endsWith('-exec'));
  assert.equal(steps.length, 1);
  const work = fx.store.path('tmp', steps[0]!, 'work');
  await eventually(() => existsSync(join(work, 'work')) && !existsSync(join(work, 'work', 'incompat')), 'the markers are still there');
  ac.abort();
  await assert.rejects(p, /RUN aborted/);
  await assertNothingLeft(marker);
});

test('the mount point shared by every step\'s private tmpfs is made again when a prune removed it', async () => {
  const shared = fx.store.path('mounts', 'sandbox-private-v1');
  await fx.run('true');
  assert.ok(existsSync(shared));
  rmSync(shared, { recursive: true });
  const r = await fx.run('hostname');
  assert.equal(r.output, 'buildkitsandbox\n');
  assert.ok(existsSync(shared));
  assert.deepEqual(readdirSync(shared), [], 'nothing of a step is left on the host folder');
  await assertNothingLeft('never-started');
});

test('sweepStaleSandboxes removes cgroups and scratch folders of dead kiln processes', async () => {
  const dead = spawnSync('true').pid!;
  const h = discoverHierarchies()[0];
  assert.ok(h, 'this machine has a cgroup hierarchy with memory, pids or cpu');
  const cg = join(h.base, `kiln-${dead}-deadbeef`);
  mkdirSync(cg);
  const scratch = fx.store.path('tmp', `${dead}-0123456789ab-exec`);
  mkdirSync(join(scratch, 'upper'), { recursive: true });
  const mine = join(h.base, `kiln-${process.pid}-cafe0000`);
  mkdirSync(mine);
  try {
    const removed = await sweepStaleSandboxes(fx.store);
    assert.ok(removed.includes(cg));
    assert.ok(!existsSync(cg));
    assert.ok(!existsSync(scratch));
    assert.ok(existsSync(mine), 'a live kiln\'s cgroup stays');
  } finally {
    spawnSync('rmdir', [mine]);
  }
});
