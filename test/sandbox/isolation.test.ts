// Isolation as Docker gives it by default: each RUN here must fail or see nothing of the host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { createServer, type Server, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeFixture, type Fixture } from './fixture.js';
import { repoRoot } from '../helpers/paths.js';

let fx: Fixture;
let probeDir: string;
before(async () => {
  fx = await makeFixture();
  probeDir = fx.store.path('probe-context');
  await mkdir(probeDir);
  execFileSync('cc', ['-static', '-O2', '-o', join(probeDir, 'syscalls'), join(repoRoot, 'test/sandbox/probe/syscalls.c')]);
});
after(() => fx.dispose());

test('every syscall Docker refuses fails with EPERM (probe bound in from a context)', async () => {
  const r = await fx.run('', {
    op: {
      args: ['/usr/local/bin/probe'],
      mounts: [{ type: 'bind', from: 1, source: 'syscalls', target: '/usr/local/bin/probe', readwrite: false }],
    },
    inputs: [
      { kind: 'state', layers: ['busybox'] },
      { kind: 'context', dir: probeDir, excludePatterns: [] },
    ],
  });
  const lines = r.output.trim().split('\n');
  assert.equal(lines.length, 22, r.output);
  for (const l of lines) assert.match(l, / EPERM$/, l);
  assert.equal(r.snapshot, null, 'the bind target is a mount stub, not part of the layer');
});

test('mount -t tmpfs fails', async () => {
  await assert.rejects(fx.run('mkdir -p /mnt && mount -t tmpfs none /mnt'), /exit code/);
});

test('/proc: sysrq-trigger and /proc/sys are read-only, kcore and keys are masked', async () => {
  // Some kernels have no sysrq-trigger at all; where it exists it must refuse writes.
  await assert.rejects(fx.run('echo h > /proc/sysrq-trigger'), /Read-only file system|nonexistent/);
  await assert.rejects(fx.run('echo evil > /proc/sys/kernel/hostname'), /Read-only file system/);
  // Docker's masked paths that this kernel has: files read empty, folders list nothing.
  const masked = ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug', '/proc/latency_stats',
    '/proc/timer_stats', '/proc/acpi', '/proc/scsi', '/proc/asound', '/sys/firmware'].filter((p) => existsSync(p));
  assert.ok(masked.length > 0);
  const r = await fx.run(masked.map((p) => `echo ${p} $(cat ${p} 2>/dev/null | wc -c) $(ls ${p} | wc -l)`).join('; '));
  assert.equal(r.output, masked.map((p) => `${p} 0 ${statSync(p).isDirectory() ? 0 : 1}\n`).join(''));
});

test('/dev holds what runc puts there, /dev/core only when the host has a /proc/kcore', async () => {
  const r = await fx.run('ls /dev');
  const expected = ['fd', 'full', 'mqueue', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero'];
  if (existsSync('/proc/kcore')) expected.unshift('core');
  assert.deepEqual(r.output.trim().split('\n'), expected);
});

test('/sys is read-only', async () => {
  await assert.rejects(fx.run('echo 1 > /sys/kernel/profiling'), /Read-only file system/);
});

test('no host process is visible', async () => {
  const r = await fx.run('for p in /proc/[0-9]*; do echo ${p#/proc/} $(cat $p/comm); done');
  const procs = r.output.trim().split('\n');
  for (const line of procs) {
    const [pid, comm] = line.split(' ');
    assert.ok(Number(pid) < 10, `unexpected process ${line}`);
    assert.notEqual(comm, 'node');
  }
  assert.ok(procs.some((l) => l.startsWith('1 ')), r.output);
});

test('no host mount is visible', async () => {
  const r = await fx.run('cut -d" " -f5 /proc/self/mountinfo');
  const points = r.output.trim().split('\n');
  const allowed = /^(\/|\/proc(\/.*)?|\/dev(\/.*)?|\/sys(\/.*)?|\/etc\/(hosts|resolv\.conf))$/;
  for (const p of points) assert.match(p, allowed);
  assert.ok(!r.output.includes(fx.store.root));
});

test('hostname and uts are the sandbox\'s own; /etc/hostname is the image\'s, as in BuildKit', async () => {
  assert.equal((await fx.run('hostname; cat /proc/sys/kernel/hostname; test -e /etc/hostname || echo none')).output, 'buildkitsandbox\nbuildkitsandbox\nnone\n');
  await assert.rejects(fx.run('hostname evil'), /exit code/);
});

test('capabilities: Docker\'s bounding set, nothing outside it can be raised', async () => {
  const r = await fx.run('grep -E "Cap(Bnd|Prm|Eff|Inh|Amb)" /proc/self/status; grep NoNewPrivs /proc/self/status; grep Seccomp: /proc/self/status');
  assert.equal(
    r.output,
    'CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t2\n',
  );
  // CAP_SYS_NICE is outside the default set.
  await assert.rejects(fx.run('nice -n -5 true'), /exit code/);
});

test('--network=none: only lo, and a loopback listener of the host is unreachable', async () => {
  const server: Server = createServer((s) => s.end('HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    // (busybox-static's wget crashes on Debian 12; nc does the job.)
    const fetch = `echo | nc -w 5 127.0.0.1 ${port}`;
    // The control: the default network is the host's, so the listener answers.
    assert.match((await fx.run(fetch)).output, /hello$/);
    await assert.rejects(fx.run(fetch, { op: { network: 'none' } }), /exit code/);
    const r = await fx.run('ls /sys/class/net; cat /sys/class/net/lo/operstate', { op: { network: 'none' } });
    assert.equal(r.output.split('\n')[0], 'lo');
    assert.equal(r.output.split('\n').length, 3);
  } finally {
    server.close();
  }
});
