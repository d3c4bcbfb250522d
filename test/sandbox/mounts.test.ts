// RUN --mount: bind (context and stage), cache (shared/locked/private), tmpfs, secret, ssh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeFixture, describeTree, type Fixture } from './fixture.js';
import type { CacheMount, RunMount } from '../../src/graph/ops.js';
import type { ResolvedInput } from '../../src/worker/types.js';
import { cacheMountDir } from '../../src/worker/exec/mounts.js';
import { FrameSplitter } from '../../src/worker/ssh/wire.js';

let fx: Fixture;
let stage: string;
let contextDir: string;
before(async () => {
  fx = await makeFixture();
  stage = (await fx.run('mkdir -p /out && echo built > /out/artifact && chown 7:8 /out && chmod 750 /out && rm /etc/group'))!.snapshot!;
  contextDir = fx.store.path('ctx');
  await mkdir(join(contextDir, 'sub'), { recursive: true });
  await writeFile(join(contextDir, 'sub', 'file.txt'), 'from context\n');
});
after(() => fx.dispose());

const stageInputs = (): ResolvedInput[] => [
  { kind: 'state', layers: ['busybox'] },
  { kind: 'state', layers: ['busybox', stage] },
  { kind: 'context', dir: contextDir, excludePatterns: [] },
];

test('bind from a stage shows its merged view read-only', async () => {
  const r = await fx.run('cat /src/out/artifact; test -e /src/etc/group || echo no-group; touch /src/x 2>&1 || true', {
    op: { mounts: [{ type: 'bind', from: 1, source: '/', target: '/src', readwrite: false }] },
    inputs: stageInputs(),
  });
  assert.match(r.output, /^built\nno-group\n.*Read-only file system/s);
  assert.equal(r.snapshot, null);
});

test('bind rw from a stage or the context: writes are discarded', async () => {
  const mounts: RunMount[] = [
    { type: 'bind', from: 1, source: 'out', target: '/art', readwrite: true },
    { type: 'bind', from: 2, source: 'sub', target: '/ctx', readwrite: true },
  ];
  const r = await fx.run('echo changed > /art/artifact && echo more > /ctx/file.txt && cat /art/artifact /ctx/file.txt', {
    op: { mounts },
    inputs: stageInputs(),
  });
  assert.equal(r.output, 'changed\nmore\n');
  assert.equal(r.snapshot, null);
  assert.equal(await readFile(join(fx.store.snapshotFs(stage), 'out', 'artifact'), 'utf8'), 'built\n');
  assert.equal(await readFile(join(contextDir, 'sub', 'file.txt'), 'utf8'), 'from context\n');
});

test('bind from the context is read-only by default', async () => {
  await assert.rejects(
    fx.run('cat /c/file.txt; echo x > /c/file.txt', {
      op: { mounts: [{ type: 'bind', from: 2, source: 'sub', target: '/c', readwrite: false }] },
      inputs: stageInputs(),
    }),
    /from context\n.*Read-only file system/s,
  );
});

const cache = (over: Partial<CacheMount> = {}): CacheMount => ({
  type: 'cache', target: '/var/cache/x', id: 'test-cache', sharing: 'shared', source: '', readonly: false,
  mode: 0o755, uid: 0, gid: 0, ...over,
});

test('cache mounts persist across steps and stay out of the layer', async () => {
  const r1 = await fx.run('echo 1 >> /var/cache/x/count; echo done > /root/out', { op: { mounts: [cache()] } });
  const r2 = await fx.run('cat /var/cache/x/count', { op: { mounts: [cache()] } });
  assert.equal(r2.output, '1\n');
  assert.deepEqual(await describeTree(fx.store.snapshotFs(r1.snapshot!)), ['root/', 'root/out = "done\\n"']);
  const dir = cacheMountDir({ store: fx.store } as Parameters<typeof cacheMountDir>[0], 'test-cache');
  assert.deepEqual(await readdir(dir), ['count']);
});

test('a new cache mount gets its mode and owner', async () => {
  const r = await fx.run('stat -c "%a %u %g" /c', { op: { mounts: [cache({ id: 'owned', target: '/c', mode: 0o700, uid: 1000, gid: 50 })] } });
  assert.equal(r.output, '700 1000 50\n');
});

test('sharing=locked runs steps one at a time; private gives a busy cache\'s second user a fresh folder', async () => {
  // Each step fails if another step is inside the cache at the same time.
  const guarded = 'mkdir /k/busy || exit 9; echo $$ > /k/busy/who; sleep 0.3; rm -r /k/busy; echo ok';
  const locked = [cache({ id: 'locked', target: '/k', sharing: 'locked' })];
  const rs = await Promise.all([1, 2, 3].map(() => fx.run(guarded, { op: { mounts: locked } })));
  for (const r of rs) assert.equal(r.output, 'ok\n');

  // Two steps that are in the cache at the same time must each see an empty folder. On a busy
  // machine one may end before the other starts: such a try proves nothing, so it is made again
  // (with a fresh cache id) until the two overlapped, as the uptime clock they print shows.
  const script = 'read s _ < /proc/uptime; ls /k | wc -l; echo x > /k/mark-$$; sleep 0.3; read e _ < /proc/uptime; echo "$s $e"';
  let overlapped = false;
  for (let attempt = 0; attempt < 5 && !overlapped; attempt++) {
    const priv = [cache({ id: `private-${attempt}`, target: '/k', sharing: 'private' })];
    const both = await Promise.all([1, 2].map(() => fx.run(script, { op: { mounts: priv } })));
    const [a, b] = both.map((r) => r.output.trim().split('\n'));
    const [as, ae] = a![1]!.split(' ').map(Number);
    const [bs, be] = b![1]!.split(' ').map(Number);
    overlapped = as! < be! && bs! < ae!;
    if (overlapped) assert.deepEqual([a![0], b![0]], ['0', '0'], 'a busy private cache is not shared');
  }
  assert.ok(overlapped, 'the two steps never ran at the same time');
});

test('tmpfs mounts have their size and leave nothing behind', async () => {
  const r = await fx.run('echo x > /scratch/f && df -k /scratch | tail -1', {
    op: { mounts: [{ type: 'tmpfs', target: '/scratch', size: 4 * 1024 * 1024 }] },
  });
  assert.match(r.output, /^tmpfs\s+4096\s/);
  assert.equal(r.snapshot, null);
});

test('secrets: files with mode and owner, env, never in the layer; required ones must be given', async () => {
  const secrets = new Map([['token', Buffer.from('s3cr3t-value')]]);
  const mounts: RunMount[] = [
    { type: 'secret', id: 'token', target: '/run/secrets/token', required: false, mode: 0o400, uid: 1000, gid: 1000 },
    { type: 'secret', id: 'token', env: 'TOKEN', required: false, mode: 0o400, uid: 0, gid: 0 },
  ];
  const r = await fx.run('stat -c "%a %u %g" /run/secrets/token; cat /run/secrets/token; echo; echo $TOKEN; cp /run/secrets/token /root/leak-check-is-allowed-copy; echo x > /root/y', {
    op: { mounts },
    ctx: { secrets },
  });
  assert.equal(r.output, '400 1000 1000\ns3cr3t-value\ns3cr3t-value\n');
  const tree = await describeTree(fx.store.snapshotFs(r.snapshot!));
  // Only what the command copied on purpose; the mount point itself is not in the layer.
  assert.deepEqual(tree, ['root/', 'root/leak-check-is-allowed-copy = "s3cr3t-value"', 'root/y = "x\\n"']);
  await assert.rejects(
    fx.run('true', { op: { mounts: [{ type: 'secret', id: 'missing', target: '/run/secrets/missing', required: true, mode: 0o400, uid: 0, gid: 0 }] } }),
    /secret missing is required/,
  );
  const optional = await fx.run('test -e /run/secrets/missing || echo absent', {
    op: { mounts: [{ type: 'secret', id: 'missing', target: '/run/secrets/missing', required: false, mode: 0o400, uid: 0, gid: 0 }] },
  });
  assert.equal(optional.output, 'absent\n');
});

test('ssh: a socket of the mount\'s mode and owner passes listing and signing to the agent, nothing else, and SSH_AUTH_SOCK is set', async () => {
  const sock = fx.store.path('agent.sock');
  // The user's agent: it notes each request's type and answers a listing with no keys.
  const reached: number[] = [];
  const server = createServer((s) => {
    const split = new FrameSplitter();
    s.on('data', (d: Buffer) => {
      for (const request of split.push(d)) {
        reached.push(request[0]!);
        if (request[0] === 11) s.write(Buffer.from([0, 0, 0, 5, 12, 0, 0, 0, 0]));
      }
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  const before = await stat(sock);
  // busybox has no unix-socket client: the step checks the socket's path, mode and owner, and
  // the agent is spoken to from the host while the step runs: a remove-all (19), then a listing (11).
  const heard: number[] = [];
  const probe = setInterval(() => {
    for (const d of readdirSafe(fx.store.path('tmp'))) {
      for (const sub of readdirSafe(join(fx.store.path('tmp'), d)).filter((n) => n.startsWith('ssh'))) {
        const c = connect(join(fx.store.path('tmp'), d, sub, 'agent.sock'));
        c.on('error', () => undefined);
        const split = new FrameSplitter();
        c.on('data', (r: Buffer) => heard.push(...split.push(r).map((reply) => reply[0]!)));
        c.write(Buffer.from([0, 0, 0, 1, 19, 0, 0, 0, 1, 11]));
      }
    }
  }, 100);
  try {
    const r = await fx.run('test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" && stat -c "%a %u %g" "$SSH_AUTH_SOCK" && sleep 1', {
      op: { mounts: [{ type: 'ssh', id: 'default', target: '/run/buildkit/ssh_agent.0', required: true, mode: 0o640, uid: 1000, gid: 1001 }] },
      ctx: { sshAgents: new Map([['default', { kind: 'socket', path: sock }]]) },
    });
    assert.equal(r.output, '/run/buildkit/ssh_agent.0\n640 1000 1001\n');
    assert.equal(r.snapshot, null);
    assert.ok(heard.length >= 2, 'the step\'s socket answered');
    assert.deepEqual(heard.slice(0, 2), [5, 12], 'the remove-all is refused (5), the listing answered by the agent (12)');
    assert.ok(reached.length > 0 && reached.every((t) => t === 11), `only listings reach the agent, got ${reached.join(',')}`);
    const after = await stat(sock);
    assert.equal(after.mode, before.mode, 'the agent socket itself is not changed');
    assert.equal(after.uid, before.uid);
  } finally {
    clearInterval(probe);
    server.close();
  }
});

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

test('bind from the context hides what the ignore patterns exclude', async () => {
  const ctx = fx.store.path('ctx-ignored');
  await mkdir(join(ctx, 'keep', 'secret-dir'), { recursive: true });
  await mkdir(join(ctx, 'drop'), { recursive: true });
  await writeFile(join(ctx, 'keep', 'a.txt'), 'a');
  await writeFile(join(ctx, 'keep', 'b.log'), 'b');
  await writeFile(join(ctx, 'keep', 'important.log'), 'i');
  await writeFile(join(ctx, 'keep', 'secret-dir', 'x'), 'x');
  await writeFile(join(ctx, 'drop', 'y'), 'y');
  for (const readwrite of [false, true]) {
    const r = await fx.run('cd /c && find . | sort', {
      op: { mounts: [{ type: 'bind', from: 1, source: '/', target: '/c', readwrite }] },
      inputs: [
        { kind: 'state', layers: ['busybox'] },
        { kind: 'context', dir: ctx, excludePatterns: ['drop', '**/*.log', '!keep/important.log', 'keep/secret-dir'] },
      ],
    });
    assert.equal(r.output, '.\n./keep\n./keep/a.txt\n./keep/important.log\n');
  }
});

test('a new cache mount with from= starts as a copy of that input\'s source folder, whose owner and mode it takes', async () => {
  const r = await fx.run('cat /c/artifact; stat -c "%u:%g %a" /c; echo more > /c/added', {
    op: { mounts: [cache({ id: 'seeded', target: '/c', from: 1, source: '/out', uid: 9, mode: 0o700 })] },
    inputs: stageInputs(),
  });
  assert.equal(r.output, 'built\n7:8 750\n');
  const again = await fx.run('ls /c', { op: { mounts: [cache({ id: 'seeded', target: '/c', from: 1, source: '/out' })] }, inputs: stageInputs() });
  assert.equal(again.output, 'added\nartifact\n');
});

test('a symlink in the context resolves inside the context, never to the host', async () => {
  const ctx = fx.store.path('ctx-symlink');
  await mkdir(join(ctx, 'inside'), { recursive: true });
  await writeFile(join(ctx, 'inside', 'passwd'), 'context passwd\n');
  await symlink('/etc', join(ctx, 'etc-link'));
  const r = await fx.run('cat /c/passwd', {
    op: { mounts: [{ type: 'bind', from: 1, source: 'etc-link/../inside', target: '/c', readwrite: false }] },
    inputs: [{ kind: 'state', layers: ['busybox'] }, { kind: 'context', dir: ctx, excludePatterns: [] }],
  });
  assert.equal(r.output, 'context passwd\n');
  await assert.rejects(fx.run('cat /c', {
    op: { mounts: [{ type: 'bind', from: 1, source: 'etc-link/hostname', target: '/c', readwrite: false }] },
    inputs: [{ kind: 'state', layers: ['busybox'] }, { kind: 'context', dir: ctx, excludePatterns: [] }],
  }), /sandbox: mount source/);
});
