// RUN semantics: USER, WORKDIR, environment, exec form, heredoc files, failures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { makeFixture, describeTree, type Fixture } from './fixture.js';
import { KilnError } from '../../src/util/errors.js';

let fx: Fixture;
before(async () => {
  fx = await makeFixture();
});
after(() => fx.dispose());

test('USER by name gets its uid, gid, supplementary groups and HOME', async () => {
  const r = await fx.run('id -u; id -g; id -G; echo $HOME', { op: { user: 'app' } });
  assert.equal(r.output, '1000\n1000\n1000 50\n/home/app\n');
});

test('USER uid:gid and unknown numeric uids', async () => {
  assert.equal((await fx.run('id -u; id -g; id -G', { op: { user: '1000:staff' } })).output, '1000\n50\n50\n');
  assert.equal((await fx.run('id -u; id -g; echo $HOME', { op: { user: '4242' } })).output, '4242\n0\n/\n');
});

test('USER that the image does not know fails clearly', async () => {
  await assert.rejects(fx.run('true', { op: { user: 'ghost' } }), (e: unknown) => e instanceof KilnError && /unable to find user ghost/.test(e.message));
});

test('a non-root USER has no capabilities and cannot write root files', async () => {
  const r = await fx.run('grep CapEff /proc/self/status; (echo x > /etc/passwd) 2>/dev/null || echo denied', { op: { user: 'app' } });
  assert.equal(r.output, 'CapEff:\t0000000000000000\ndenied\n');
});

test('WORKDIR is created when missing and is the working directory', async () => {
  const r = await fx.run('pwd', { op: { cwd: '/srv/app' } });
  assert.equal(r.output, '/srv/app\n');
  assert.ok(r.snapshot);
  assert.deepEqual(await describeTree(fx.store.snapshotFs(r.snapshot)), ['srv/', 'srv/app/']);
});

test('environment: the op env, PATH when unset, HOME; not HOSTNAME, which BuildKit leaves to the shell', async () => {
  const r = await fx.run('', {
    op: { args: ['/bin/env'], env: ['FOO=bar baz'] },
  });
  const lines = r.output.trim().split('\n').sort();
  assert.deepEqual(lines, [
    'FOO=bar baz',
    'HOME=/root',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  ]);
});

test('exec form finds the program on PATH; a missing program fails with 127', async () => {
  assert.equal((await fx.run('', { op: { args: ['echo', 'exec', 'form'] } })).output, 'exec form\n');
  await assert.rejects(fx.run('', { op: { args: ['no-such-program'] } }), /exit code: 127/);
});

test('heredoc files exist for the step only', async () => {
  const r = await fx.run('', {
    op: { args: ['/bin/sh', '/dev/pipes/script'], files: [{ path: '/dev/pipes/script', content: 'echo from heredoc; echo made > /tmp/made\n', mode: 0o755 }] },
  });
  assert.equal(r.output, 'from heredoc\n');
  assert.deepEqual(await describeTree(fx.store.snapshotFs(r.snapshot!)), ['tmp/', 'tmp/made = "made\\n"']);
  const r2 = await fx.run('cat /usr/local/run.sh; ls /usr/local', {
    op: { files: [{ path: '/usr/local/run.sh', content: 'hello\n', mode: 0o644 }] },
  });
  assert.equal(r2.output, 'hello\nrun.sh\n');
  assert.equal(r2.snapshot, null);
});

test('a failing command reports the command, exit code and the last 20 lines', async () => {
  await assert.rejects(fx.run('for i in $(seq 1 30); do echo line$i; done; exit 3'), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.match(e.message, /process "\/bin\/sh -c for i in .*" did not complete successfully: exit code: 3/);
    assert.match(e.message, /line11\n.*line30$/s);
    assert.doesNotMatch(e.message, /line10\n/);
    return true;
  });
});

test('--security=insecure is refused unless allowed', async () => {
  await assert.rejects(fx.run('true', { op: { security: 'insecure' } }), /--allow security.insecure/);
  const r = await fx.run('grep CapEff /proc/self/status', { op: { security: 'insecure' }, ctx: { allowInsecure: true } });
  // Everything kiln itself holds, CAP_SYS_ADMIN included (the default set has none of that).
  const own = /CapEff:\t([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1];
  assert.equal(r.output, `CapEff:\t${own}\n`);
  const normal = await fx.run('grep CapEff /proc/self/status');
  assert.equal(normal.output, 'CapEff:\t00000000a80425fb\n');
});
