// --memory and --pids-limit: a memory hog and a fork bomb end the step with a clear message,
// and leave neither process nor cgroup behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { makeFixture, type Fixture } from './fixture.js';
import { discoverHierarchies } from '../../src/worker/sandbox/cgroups.js';
import { KilnError } from '../../src/util/errors.js';
import { eventually, hostProcesses } from './procs.js';

let fx: Fixture;
before(async () => {
  fx = await makeFixture();
});
after(() => fx.dispose());

function ourCgroups(): string[] {
  const out: string[] = [];
  for (const h of discoverHierarchies()) {
    for (const n of readdirSync(h.base)) if (n.startsWith(`kiln-${process.pid}-`)) out.push(`${h.base}/${n}`);
  }
  return out;
}

test('a memory hog is killed with a clear message', async () => {
  await assert.rejects(
    fx.run("awk 'BEGIN { s = \"x\"; while (1) s = s s }'", { limits: { memoryBytes: 64 * 1024 * 1024 } }),
    (e: unknown) => e instanceof KilnError && /killed: out of memory, limit 64 MiB/.test(e.message),
  );
  assert.deepEqual(ourCgroups(), []);
});

test('a fork bomb is stopped at the pids limit with a clear message', async () => {
  await assert.rejects(
    fx.run('bomb() { bomb | bomb & }; bomb; sleep 1000 # fork-bomb-marker', { limits: { pids: 64 } }),
    (e: unknown) => e instanceof KilnError && /killed: process limit reached, limit 64 processes/.test(e.message),
  );
  assert.deepEqual(ourCgroups(), []);
  await eventually(() => !hostProcesses().some((p) => p.cmdline.some((a) => a.includes('fork-bomb-marker'))), 'fork bomb processes remain');
});

test('a step within its limits runs normally and sees its cgroup as its own root', async () => {
  const r = await fx.run('cat /proc/self/cgroup | grep -E "memory|pids"', { limits: { memoryBytes: 256 * 1024 * 1024, pids: 100, cpus: 1.5 } });
  for (const line of r.output.trim().split('\n')) assert.match(line, /:\/$/);
  assert.deepEqual(ourCgroups(), []);
});

test('the limits are readable at /sys/fs/cgroup inside the step, read-only', async () => {
  const h = discoverHierarchies();
  const mem = h.find((x) => x.controllers.includes('memory'))!;
  const pids = h.find((x) => x.controllers.includes('pids'))!;
  const memFile = mem.version === 1 ? 'memory/memory.limit_in_bytes' : 'memory.max';
  const pidsFile = pids.version === 1 ? 'pids/pids.max' : 'pids.max';
  const r = await fx.run(`cat /sys/fs/cgroup/${memFile} /sys/fs/cgroup/${pidsFile}; (echo 1 > /sys/fs/cgroup/${pidsFile}) 2>/dev/null || echo refused`, {
    limits: { memoryBytes: 256 * 1024 * 1024, pids: 77 },
  });
  assert.equal(r.output, `${256 * 1024 * 1024}\n77\nrefused\n`);
});

test('the limits are set on the step\'s cgroup while it runs', async () => {
  const running = fx.run('sleep 1', { limits: { cpus: 0.5, memoryBytes: 128 * 1024 * 1024, pids: 50 } });
  await eventually(() => ourCgroups().length > 0, 'no step cgroup appeared');
  const values: Record<string, string> = {};
  for (const dir of ourCgroups()) {
    for (const f of ['cpu.cfs_quota_us', 'cpu.cfs_period_us', 'cpu.max', 'memory.limit_in_bytes', 'memory.max', 'pids.max']) {
      try {
        values[f] = readFileSync(`${dir}/${f}`, 'utf8').trim();
      } catch {
        // not this hierarchy
      }
    }
  }
  await running;
  if (values['cpu.max'] !== undefined) assert.equal(values['cpu.max'], '50000 100000');
  else assert.deepEqual([values['cpu.cfs_quota_us'], values['cpu.cfs_period_us']], ['50000', '100000']);
  assert.equal(values['memory.limit_in_bytes'] ?? values['memory.max'], String(128 * 1024 * 1024));
  assert.equal(values['pids.max'], '50');
  assert.deepEqual(ourCgroups(), []);
});
