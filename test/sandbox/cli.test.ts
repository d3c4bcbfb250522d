// RUN end to end through `kiln build`: the layers umoci unpacks and podman runs, isolation,
// secrets, limits and Ctrl-C, with nothing of kiln left on the machine afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { lstatSync, existsSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runKiln, type RunResult } from '../helpers/kiln.js';
import { kilnBin } from '../helpers/paths.js';
import { makeBusyboxRootfs, BUSYBOX_DOCKERFILE } from '../helpers/busybox.js';
import { eventually, hostProcesses, mountsMentioning } from './procs.js';
import { discoverHierarchies } from '../../src/worker/sandbox/cgroups.js';
import { filesUnder } from '../helpers/files.js';

let work: string;
let root: string;
const BASE = 'kiln.test/busybox:base';

before(async () => {
  // Lowercase only: podman reads an `oci:` path as an image name too.
  work = join(tmpdir(), `kiln-sandbox-cli-${randomBytes(5).toString('hex')}`);
  await mkdir(work);
  root = join(work, 'store');
  const ctx = join(work, 'busybox');
  await mkdir(ctx);
  await makeBusyboxRootfs(ctx);
  await writeFile(join(ctx, 'Dockerfile'), BUSYBOX_DOCKERFILE);
  const r = await runKiln(['build', '--root', root, '-t', BASE, '-q', ctx]);
  assert.equal(r.code, 0, r.stderr);
});
after(() => rm(work, { recursive: true, force: true }));

/** Builds `dockerfile` (FROM the busybox base) with an empty context. */
async function build(name: string, dockerfile: string, flags: string[] = [], env: Record<string, string> = {}): Promise<RunResult & { dir: string }> {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'Dockerfile'), `FROM ${BASE}\n${dockerfile}`);
  const r = await runKiln(['build', '--root', root, '--progress', 'plain', ...flags, dir], { env });
  return { ...r, dir };
}

function podmanRun(layout: string, script: string): string {
  const pm = join(work, 'podman');
  return execFileSync('podman', [
    '--root', join(pm, 'root'), '--runroot', join(pm, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs',
    '--events-backend', 'file', '--runtime', 'runc', 'run', '--rm', '--network', 'none',
    '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', `oci:${layout}:v1`, 'sh', '-c', script,
  ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

test('RUN changes become layers that umoci unpacks and podman runs as expected', async () => {
  const layout = join(work, 'layout');
  const r = await build('changes', [
    'RUN mkdir -p /data/dir/sub /data/dir2 && cd /data && echo a > a && echo b > b && echo f > file && echo f2 > f2 && echo x > dir/sub/x && echo old > dir2/old',
    'RUN cd /data && echo changed > a && rm b && mv file renamed && rm -rf dir && echo now-file > dir && rm f2 && mkdir f2 && echo in > f2/inner && rm -rf dir2 && mkdir dir2 && echo fresh > dir2/fresh && echo n > new && ln new newlink',
    'RUN cat /etc/hosts /etc/resolv.conf > /dev/null && ls /proc/self > /dev/null',
    '',
  ].join('\n'), ['-o', `type=oci,dest=${layout},tar=false,name=kiln.test/changes:v1`]);
  assert.equal(r.code, 0, r.stderr);
  const bundle = join(work, 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
  const rootfs = join(bundle, 'rootfs');
  const listing = execFileSync('find', ['data', '-printf', '%p %y\n'], { cwd: rootfs, encoding: 'utf8' }).trim().split('\n').sort();
  assert.deepEqual(listing, [
    'data d', 'data/a f', 'data/dir f', 'data/dir2 d', 'data/dir2/fresh f', 'data/f2 d', 'data/f2/inner f',
    'data/new f', 'data/newlink f', 'data/renamed f',
  ]);
  assert.equal(readFileSync(join(rootfs, 'data/a'), 'utf8'), 'changed\n');
  assert.equal(readFileSync(join(rootfs, 'data/dir'), 'utf8'), 'now-file\n');
  assert.equal(lstatSync(join(rootfs, 'data/new')).ino, lstatSync(join(rootfs, 'data/newlink')).ino, 'hard link kept');
  // The sandbox's mount points are not in the image (the busybox base has none of them).
  for (const p of ['proc', 'dev', 'sys', 'etc/hosts', 'etc/resolv.conf', 'etc/hostname']) assert.ok(!existsSync(join(rootfs, p)), p);
  // The last RUN changed nothing: its layer is empty.
  const out = podmanRun(layout, 'cd /data && ls && cat a dir f2/inner dir2/fresh');
  assert.equal(out, 'a\ndir\ndir2\nf2\nnew\nnewlink\nrenamed\nchanged\nnow-file\nin\nfresh\n');
});

test('RUN semantics through the CLI: heredocs, USER, WORKDIR, cache and tmpfs mounts', async () => {
  const layout = join(work, 'semantics-layout');
  const dockerfile = [
    'WORKDIR /srv/app',
    'RUN <<EOF',
    '#!/bin/sh',
    'echo "script $(pwd)" > /srv/app/from-script',
    'EOF',
    'RUN <<ONE cat > /srv/app/two-docs && cat - <<TWO >> /srv/app/two-docs',
    'first',
    'ONE',
    'second',
    'TWO',
    'USER app',
    'RUN id -u > /tmp/uid && id -G > /tmp/groups && echo $HOME > /tmp/home',
    'USER root',
    'RUN --mount=type=cache,target=/var/cache/c echo x >> /var/cache/c/runs && wc -l < /var/cache/c/runs > /srv/app/cache-runs',
    'RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && test -f /scratch/t',
    '',
  ].join('\n');
  const first = await build('semantics', dockerfile, ['-o', `type=oci,dest=${layout},tar=false,name=kiln.test/semantics:v1`]);
  assert.equal(first.code, 0, first.stderr);
  const out = podmanRun(layout, 'cat /srv/app/from-script /srv/app/two-docs /tmp/uid /tmp/groups /tmp/home /srv/app/cache-runs; ls -a /scratch 2>&1 | head -1');
  assert.equal(out, 'script /srv/app\nfirst\nsecond\n1000\n1000 50\n/home/app\n1\nls: /scratch: No such file or directory\n');
  // The cache mount outlives the build: a new build of a changed step sees the first run's file.
  const second = await build('semantics', dockerfile.replace('echo x >>', 'echo y >>'), ['-o', `type=oci,dest=${layout},tar=false,name=kiln.test/semantics:v1`]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(podmanRun(layout, 'cat /srv/app/cache-runs'), '2\n');
});

test('WORKDIR under a USER the image lacks makes root folders and builds, as BuildKit does', async () => {
  const r = await build('workdir-ghost', [
    'USER ghost',
    'WORKDIR /opt/ghost/w',
    'USER app',
    'WORKDIR /opt/app/w',
    'USER root',
    'RUN test "$(stat -c %u:%g /opt/ghost /opt/ghost/w /opt/app/w)" = "$(printf "0:0\\n0:0\\n1000:1000")" && test "$(pwd)" = /opt/app/w',
    '',
  ].join('\n'));
  assert.equal(r.code, 0, r.stderr);
});

test('a setuid program works in a step run as another user (sudo, su), as in BuildKit, which leaves no_new_privs off', async () => {
  const r = await build('setuid', [
    // A setuid-root busybox, reached as `su`, and a root account without a password.
    'RUN mkdir /suid && cp /bin/busybox /suid/busybox && chmod 4755 /suid/busybox && ln -s busybox /suid/su && sed -i "s/^root:x:/root::/" /etc/passwd',
    'USER app',
    'RUN /suid/su -c "id -u > /tmp/su-uid && touch /made-by-root" root && grep NoNewPrivs /proc/self/status > /tmp/nnp',
    // The step's root is still bounded: nothing outside Docker's capability set.
    'RUN /suid/su -c "grep CapEff /proc/self/status" root > /tmp/su-caps',
    'USER root',
    'RUN test "$(cat /tmp/su-uid)" = 0 && test "$(stat -c %u /made-by-root)" = 0 && test "$(cat /tmp/su-caps)" = "$(printf "CapEff:\\t00000000a80425fb")" && grep -q "NoNewPrivs:.0" /tmp/nnp',
    '',
  ].join('\n'));
  assert.equal(r.code, 0, r.stderr);
});

test('/etc/hostname is the image\'s own, as in BuildKit: RUN may delete and write it, and the image keeps what it wrote', async () => {
  const out = join(work, 'hostname-file');
  const r = await build('hostname-file', [
    'RUN rm -f /etc/hostname && echo one > /etc/hostname',
    'RUN cat /etc/hostname > /seen && mv /etc/hostname /tmp/h && mv /tmp/h /etc/hostname',
    '',
  ].join('\n'), ['-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(out, 'etc/hostname'), 'utf8'), 'one\n');
  assert.equal(readFileSync(join(out, 'seen'), 'utf8'), 'one\n');
});

test('RUN steps are named buildkitsandbox, or what --build-arg BUILDKIT_SANDBOX_HOSTNAME says, as in BuildKit', async () => {
  const check = (name: string) => `RUN test "$(hostname) $HOSTNAME $(grep -c "localhost ${name}$" /etc/hosts)" = "${name} ${name} 1"\n`;
  const plain = await build('hostname-default', check('buildkitsandbox'));
  assert.equal(plain.code, 0, plain.stderr);
  const named = await build('hostname-arg', check('builder-7'), ['--build-arg', 'BUILDKIT_SANDBOX_HOSTNAME=builder-7']);
  assert.equal(named.code, 0, named.stderr);
  assert.doesNotMatch(named.stderr, /BUILDKIT_SANDBOX_HOSTNAME/, 'a builder option, not an unused build arg');
  const bad = await build('hostname-bad', 'RUN true\n', ['--build-arg', `BUILDKIT_SANDBOX_HOSTNAME=${'x'.repeat(65)}`]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--build-arg BUILDKIT_SANDBOX_HOSTNAME: "x{65}" is not a host name/);
});

test('a cache mount seeded from a stage starts as BuildKit starts it: the source folder as it is, else an empty folder with uid/gid/mode, else the whole stage', async () => {
  const r = await build('cache-seed', [
    'RUN mkdir -p /pre/inner && echo pre > /pre/inner/p && chown -R 7:8 /pre && chmod 750 /pre',
    `FROM ${BASE}`,
    'RUN --mount=type=cache,target=/c1,id=seed-src,from=0,source=/pre,uid=9,mode=0700 stat -c "%u:%g %a" /c1 /c1/inner/p > /c1.txt',
    'RUN --mount=type=cache,target=/c2,id=seed-perms,from=0,uid=9,mode=0700 sh -c \'stat -c "%u:%g %a" /c2; ls -A /c2\' > /c2.txt',
    'RUN --mount=type=cache,target=/c3,id=seed-root,from=0 stat -c "%u:%g %a" /c3/pre > /c3.txt',
    'RUN test "$(cat /c1.txt)" = "$(printf "7:8 750\\n7:8 644")" && test "$(cat /c2.txt)" = "9:0 700" && test "$(cat /c3.txt)" = "7:8 750"',
    '',
  ].join('\n'));
  assert.equal(r.code, 0, r.stderr);
});

test('--build-arg BUILDKIT_CACHE_MOUNT_NS gives the build cache mounts of its own, as in BuildKit', async () => {
  // N changes every build, so the step runs again (--no-cache would start its cache mount empty).
  const dockerfile = 'ARG N\nRUN --mount=type=cache,target=/c echo run $N >> /c/runs && wc -l < /c/runs > /runs\n';
  let n = 0;
  const runs = async (ns?: string) => {
    const out = join(work, `cache-ns-${++n}`);
    const r = await build('cache-ns', dockerfile, ['--build-arg', `N=${n}`, ...(ns ? ['--build-arg', `BUILDKIT_CACHE_MOUNT_NS=${ns}`] : []), '-o', `type=local,dest=${out}`]);
    assert.equal(r.code, 0, r.stderr);
    return readFileSync(join(out, 'runs'), 'utf8').trim();
  };
  assert.equal(await runs(), '1');
  assert.equal(await runs('team-a'), '1');
  assert.equal(await runs('team-a'), '2');
  assert.equal(await runs('team-b'), '1');
  assert.equal(await runs(), '2');
});

test('--no-cache starts a RUN\'s cache mounts empty, and what that step leaves is the cache after it, as in BuildKit', async () => {
  const dockerfile = `FROM ${BASE} AS app\nARG N\nRUN --mount=type=cache,target=/c,id=nocache-runs echo run $N >> /c/runs && cat /c/runs > /runs\n`;
  const runs = async (n: number, flags: string[] = []) => {
    const out = join(work, `nocache-mount-${n}`);
    const r = await build('nocache-mount', dockerfile, ['--build-arg', `N=${n}`, ...flags, '-o', `type=local,dest=${out}`]);
    assert.equal(r.code, 0, r.stderr);
    return readFileSync(join(out, 'runs'), 'utf8').trim().split('\n');
  };
  assert.deepEqual(await runs(1), ['run 1']);
  assert.deepEqual(await runs(2), ['run 1', 'run 2']);
  assert.deepEqual(await runs(3, ['--no-cache']), ['run 3']);
  assert.deepEqual(await runs(4), ['run 3', 'run 4']);
  assert.deepEqual(await runs(5, ['--no-cache-filter', 'app']), ['run 5']);
  // A --no-cache step whose mounts could not be prepared never ran: the cache is left as it was.
  const failed = await build('nocache-mount-failed', `FROM ${BASE} AS app\nRUN --mount=type=cache,target=/c,id=nocache-runs --mount=type=secret,id=absent,required=true true\n`, ['--no-cache']);
  assert.notEqual(failed.code, 0);
  assert.match(failed.stderr, /secret absent is required/);
  assert.deepEqual(await runs(6), ['run 5', 'run 6']);
});

test('a relative --root works for RUN steps (the store path is made absolute)', async () => {
  const dir = join(work, 'relative-root');
  await mkdir(join(dir, 'ctx'), { recursive: true });
  await writeFile(join(dir, 'ctx', 'Dockerfile'), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sh", "-c", "echo ran > /ran"]\n');
  await writeFile(join(dir, 'ctx', 'busybox'), readFileSync(join(work, 'busybox', 'bin', 'busybox')), { mode: 0o755 });
  const r = await runKiln(['build', '--root', 'rel-store', '--progress', 'plain', '-t', 'rel:1', 'ctx'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(dir, 'rel-store', 'refs')), 'the store is made relative to the working folder');
});

test('a failing RUN names its Dockerfile line, the command, the exit code and its output', async () => {
  const r = await build('fails', 'RUN echo about to fail && mount -t tmpfs none /mnt\n');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Dockerfile:2/);
  assert.match(r.stderr, /mount -t tmpfs none \/mnt" did not complete successfully: exit code: \d+/);
  assert.match(r.stderr, /about to fail/);
});

test('isolation through the CLI: sysrq, kernel modules, host processes', async () => {
  const r = await build('isolated', [
    'RUN ! (echo h > /proc/sysrq-trigger) 2>/dev/null',
    'RUN ! insmod /bin/busybox 2>/dev/null',
    // A new pid namespace: every visible pid is one of the step's own, numbered from 1.
    'RUN for p in /proc/[0-9]*; do test ${p#/proc/} -lt 20 || exit 1; done; test -d /proc/1',
    'RUN ! nice -n -5 true 2>/dev/null',
    '',
  ].join('\n'));
  assert.equal(r.code, 0, r.stderr);
});

test('--network none cuts the host loopback off; the default network reaches it', async () => {
  const server = createServer((s) => s.end('pong\n'));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  try {
    const port = (server.address() as AddressInfo).port;
    const ok = await build('net-default', `RUN echo | nc -w 5 127.0.0.1 ${port} | grep pong\n`);
    assert.equal(ok.code, 0, ok.stderr);
    const cut = await build('net-none', `RUN echo | nc -w 5 127.0.0.1 ${port} | grep pong\n`, ['--network', 'none']);
    assert.notEqual(cut.code, 0);
    const perRun = await build('net-flag', `RUN --network=none echo | nc -w 5 127.0.0.1 ${port} | grep pong\n`);
    assert.notEqual(perRun.code, 0);
  } finally {
    server.close();
  }
});

const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex');

test('secrets reach the step and nothing else: not the image, the history, the cache or the store', async () => {
  const secretValue = 'kiln-secret-6f1d0a';
  const secretFile = join(work, 'secret.txt');
  await writeFile(secretFile, secretValue);
  const layout = join(work, 'secret-layout');
  const r = await build('secrets', [
    // Checked by digest: the Dockerfile (and so the history) must not hold the values either.
    `RUN --mount=type=secret,id=tok test "$(sha256sum < /run/secrets/tok)" = "${sha256hex(secretValue)}  -" && echo used > /used`,
    `RUN --mount=type=secret,id=envtok,env=TOKEN test "$(printf %s "$TOKEN" | sha256sum)" = "${sha256hex('from-env-3b9')}  -" && echo env-used > /env-used`,
    '',
  ].join('\n'), ['--secret', `id=tok,src=${secretFile}`, '--secret', 'id=envtok,env=KILN_TEST_TOKEN', '-o', `type=oci,dest=${layout},tar=false,name=kiln.test/secrets:v1`], { KILN_TEST_TOKEN: 'from-env-3b9' });
  assert.equal(r.code, 0, r.stderr);
  for (const dir of [layout, root]) {
    for (const [p, data] of filesUnder(dir)) {
      assert.ok(!data.includes(secretValue), `secret found in ${p}`);
      assert.ok(!data.includes('from-env-3b9'), `env secret found in ${p}`);
    }
  }
});

test('--ssh forwards the agent: the step gets its own socket with the mount\'s mode and owner', async () => {
  const agent = join(work, 'agent.sock');
  const server = createServer((c) => c.end('agent\n'));
  await new Promise<void>((r) => server.listen(agent, r));
  try {
    const r = await build('ssh', [
      'RUN --mount=type=ssh,mode=0640,uid=1000,gid=1001 test -S "$SSH_AUTH_SOCK" && stat -c "ssh %n %a %u %g" "$SSH_AUTH_SOCK"',
      // As in BuildKit: the step is told where the agent would be; nothing is there.
      'RUN --mount=type=ssh,id=other,required=false test "$SSH_AUTH_SOCK" = /run/buildkit/ssh_agent.0 && test ! -e "$SSH_AUTH_SOCK" && echo no-other-agent',
      '',
    ].join('\n'), ['--ssh', 'default'], { SSH_AUTH_SOCK: agent });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ssh \/run\/buildkit\/ssh_agent\.0 640 1000 1001/);
    assert.match(r.stderr, /no-other-agent/);
    const missing = await build('ssh-missing', 'RUN --mount=type=ssh,required=true true\n');
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /ssh agent default is required but was not given \(--ssh default\)/);
  } finally {
    server.close();
  }
});

test('--memory and --pids-limit: a memory hog and a fork bomb end the step with a clear message', async () => {
  const hog = await build('hog', "RUN awk 'BEGIN { s = \"x\"; while (1) s = s s }'\n", ['--memory', '64m']);
  assert.notEqual(hog.code, 0);
  assert.match(hog.stderr, /killed: out of memory, limit 64 MiB/);
  const bomb = await build('bomb', 'RUN bomb() { bomb | bomb & }; bomb; sleep 1000\n', ['--pids-limit', '64']);
  assert.notEqual(bomb.code, 0);
  assert.match(bomb.stderr, /killed: process limit reached, limit 64 processes/);
});

test('--add-host, --shm-size and --ulimit reach every RUN step; only --add-host is part of the key', async () => {
  const script = 'RUN grep -v localhost /etc/hosts; df -k /dev/shm | awk \'NR==2 { print "shm", $2 }\'; echo "nofile $(ulimit -n) $(ulimit -Hn)"\n';
  const flags = ['--add-host', 'db:10.1.2.3', '--add-host', 'gw=host-gateway', '--add-host', 'six:[fd00::1]',
    '--shm-size', '8m', '--ulimit', 'nofile=100:200'];
  const first = await build('run-flags', script, flags);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /10\.1\.2\.3\tdb\n.*127\.0\.0\.1\tgw\n.*fd00::1\tsix\n/s);
  assert.match(first.stderr, /shm 8192\n/);
  assert.match(first.stderr, /nofile 100 200\n/);
  // Limits are not part of a step's key (the step is cached); the hosts are (it runs again).
  const limitsOnly = await build('run-flags', script, [...flags.slice(0, 6), '--shm-size', '16m', '--ulimit', 'nofile=50']);
  assert.equal(limitsOnly.code, 0, limitsOnly.stderr);
  assert.match(limitsOnly.stderr, /#2 CACHED/);
  const otherHost = await build('run-flags', script, ['--add-host', 'db:10.9.9.9', '--explain']);
  assert.equal(otherHost.code, 0, otherHost.stderr);
  assert.match(otherHost.stderr, /10\.9\.9\.9\tdb\n/);
  assert.match(otherHost.stderr, /shm 65536\n/, '64 MiB without --shm-size');
  assert.match(otherHost.stderr, /--add-host changed db:10\.1\.2\.3 gw:127\.0\.0\.1 six:fd00::1 -> db:10\.9\.9\.9/);

  // A limit above kiln's own hard limit cannot be given to a step: the step fails, naming it.
  const hard = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  if (hard !== 'unlimited') {
    const above = await build('run-flags-above', 'RUN true\n', ['--ulimit', `nofile=${Number(hard) + 1}`]);
    assert.equal(above.code, 1);
    assert.match(above.stderr, new RegExp(`Dockerfile:2:1: .*--ulimit nofile=${Number(hard) + 1}:${Number(hard) + 1}: above this machine's hard limit`));
  }
  for (const [bad, message] of [
    [['--add-host', 'db'], /--add-host: expected NAME:IP, got "db"/],
    [['--add-host', 'db:example.com'], /--add-host db: "example\.com" is not an IP address/],
    [['--ulimit', 'nofile'], /--ulimit: expected NAME=SOFT\[:HARD\], got "nofile"/],
    [['--ulimit', 'files=10'], /--ulimit: unknown limit "files"/],
    [['--ulimit', 'nofile=200:100'], /--ulimit nofile=200:100: the soft limit is above the hard limit/],
    [['--shm-size', 'lots'], /--shm-size: expected a size/],
  ] as const) {
    const r = await build('run-flags-bad', 'RUN true\n', [...bad]);
    assert.equal(r.code, 2, bad.join(' '));
    assert.match(r.stderr, message);
  }
});

test('--cpu-shares, --cpu-period, --cpu-quota, --cpuset-cpus and --memory-swap set each RUN step\'s cgroup; bad values are refused', async () => {
  const h = discoverHierarchies();
  const file = (ctrl: string, v1: string, v2: string) => {
    const x = h.find((y) => y.controllers.includes(ctrl as 'cpu'))!;
    // Inside the step, a v1 hierarchy is mounted under the names of its controllers.
    return x.version === 1 ? `/sys/fs/cgroup/${readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.split(':')[1]!.split(',').includes(ctrl))!.split(':')[1]}/${v1}` : `/sys/fs/cgroup/${v2}`;
  };
  const cpu = h.find((y) => y.controllers.includes('cpu'))!;
  const files = [
    file('cpu', 'cpu.shares', 'cpu.weight'),
    ...(cpu.version === 1 ? [file('cpu', 'cpu.cfs_quota_us', ''), file('cpu', 'cpu.cfs_period_us', '')] : [file('cpu', '', 'cpu.max')]),
    file('cpuset', 'cpuset.cpus', 'cpuset.cpus'),
  ];
  const mem = h.find((y) => y.controllers.includes('memory'))!;
  const swapFile = mem.version === 1 ? file('memory', 'memory.memsw.limit_in_bytes', '') : file('memory', '', 'memory.swap.max');
  const r = await build('cgroup-flags', `RUN cat ${files.join(' ')}; cat ${swapFile} 2>/dev/null || echo no-swap-accounting\n`,
    ['-c', '512', '--cpu-period', '50000', '--cpu-quota', '25000', '--cpuset-cpus', '0', '--memory', '64m', '--memory-swap', '96m', '--progress', 'plain']);
  assert.equal(r.code, 0, r.stderr);
  const cpuLines = cpu.version === 1 ? '512\n25000\n50000\n' : `${Math.floor(1 + ((512 - 2) * 9999) / 262142)}\n25000 50000\n`;
  const swap = mem.version === 1 ? String(96 * 1024 * 1024) : String(32 * 1024 * 1024);
  const output = r.stderr.split('\n').flatMap((l) => /^#2 [\d.]+ (.*)$/.exec(l)?.[1] ?? []).join('\n') + '\n';
  assert.match(output, new RegExp(`^${cpuLines}0\n(${swap}|no-swap-accounting)\n$`));
  for (const [bad, message] of [
    [['--cpu-shares', '1'], /--cpu-shares: expected a whole number from 2 to 262144, got "1"/],
    [['--cpu-period', '500'], /--cpu-period: expected a whole number from 1000 to 1000000/],
    [['--cpus', '1', '--cpu-quota', '50000'], /--cpus cannot be given with --cpu-period or --cpu-quota/],
    [['--memory-swap', '1g'], /--memory-swap needs --memory/],
    [['--memory', '1g', '--memory-swap', '512m'], /--memory-swap: the limit of memory and swap together must be at least --memory/],
    [['--cpuset-cpus', 'all'], /--cpuset-cpus: expected a list such as 0-3 or 0,2, got "all"/],
  ] as const) {
    const b = await build('cgroup-flags-bad', 'RUN true\n', [...bad]);
    assert.equal(b.code, 2, bad.join(' '));
    assert.match(b.stderr, message);
  }
});

test('--cgroup-parent puts each RUN step\'s cgroup below that path, in every hierarchy; the step\'s own goes when it ends', async () => {
  const parent = `kiln-test-${randomBytes(4).toString('hex')}`;
  const mounts = [...new Set(discoverHierarchies().map((h) => h.mountPoint))];
  const below = () => mounts.flatMap((m) => {
    try {
      return readdirSync(join(m, parent, 'ci')).filter((n) => n.startsWith('kiln-')).map((n) => join(m, parent, 'ci', n));
    } catch {
      return [];
    }
  });
  try {
    const running = build('cgroup-parent', 'RUN sleep 1\n', ['--cgroup-parent', `/${parent}/ci`]);
    await eventually(() => below().length === mounts.length && below().every((d) => readFileSync(join(d, 'cgroup.procs'), 'utf8').trim() !== ''), 'the step is not below the parent');
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(below(), []);
    const bad = await build('cgroup-parent-bad', 'RUN true\n', ['--cgroup-parent', '../up']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--cgroup-parent: expected a cgroup path such as ci\/builds, got "\.\.\/up"/);
  } finally {
    for (const m of mounts) {
      for (const d of [join(m, parent, 'ci'), join(m, parent)]) {
        try {
          rmdirSync(d);
        } catch {
          // not made in this hierarchy
        }
      }
    }
  }
});

test('a build killed during a step leaves its cgroups below --cgroup-parent; the next build, without the flag, removes them', async () => {
  const parent = `kiln-test-${randomBytes(4).toString('hex')}`;
  const mounts = [...new Set(discoverHierarchies().map((h) => h.mountPoint))];
  const below = () => mounts.flatMap((m) => {
    try {
      return readdirSync(join(m, parent)).filter((n) => n.startsWith('kiln-')).map((n) => join(m, parent, n));
    } catch {
      return [];
    }
  });
  const marker = `kiln-cgroup-parent-kill-${randomBytes(4).toString('hex')}`;
  const dir = join(work, 'cgroup-parent-killed');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'Dockerfile'), `FROM ${BASE}\nRUN sh -c 'sleep 600; true' ${marker}\n`);
  const child = spawn(kilnBin, ['build', '--root', root, '--cgroup-parent', parent, '--progress', 'plain', dir], { stdio: ['ignore', 'ignore', 'ignore'] });
  const exited = new Promise((res) => child.on('close', res));
  try {
    await eventually(() => below().length === mounts.length && hostProcesses().some((p) => p.cmdline.some((a) => a.includes(marker))), 'the step did not start below the parent');
    child.kill('SIGKILL');
    await exited;
    await eventually(() => !hostProcesses().some((p) => p.cmdline.some((a) => a.includes(marker))), 'step processes remain');
    assert.equal(below().length, mounts.length, 'a killed kiln cannot remove its step cgroups');
    const next = await build('cgroup-parent-next', 'RUN true\n');
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(below(), [], 'the next build swept them');
  } finally {
    child.kill('SIGKILL');
    await exited;
    await eventually(() => !hostProcesses().some((p) => p.cmdline.some((a) => a.includes(marker))), 'step processes remain');
    for (const d of below()) rmdirIfThere(d);
    for (const m of mounts) rmdirIfThere(join(m, parent));
  }
});

function rmdirIfThere(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not made in this hierarchy, or already gone
  }
}

test('RUN --security=insecure needs --allow security.insecure', async () => {
  const refused = await build('insecure', 'RUN --security=insecure grep -q "CapEff:.*ffff" /proc/self/status\n');
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /--allow security.insecure/);
  const allowed = await build('insecure', 'RUN --security=insecure grep -q "CapEff:.*ffff" /proc/self/status\n', ['--allow', 'security.insecure']);
  assert.equal(allowed.code, 0, allowed.stderr);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} to kiln during a RUN stops it and leaves no process, mount or cgroup`, async () => {
    const marker = `sig-marker-${sig}`;
    const dir = join(work, `signal-${sig}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'Dockerfile'), `FROM ${BASE}\nRUN sh -c 'sleep 600 & sleep 600 & wait' ${marker}\n`);
    const child = spawn(kilnBin, ['build', '--root', root, '--pids-limit', '100', '--progress', 'plain', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let code: number | null | undefined;
    const exited = new Promise<number | null>((res) => child.on('close', (c) => res((code = c))));
    const running = () => hostProcesses().filter((p) => p.cmdline.some((a) => a.includes(marker)));
    await eventually(() => {
      if (code !== undefined) throw new Error(`kiln ended before the RUN started (${code}): ${stderr}`);
      return running().length > 0;
    }, 'the RUN did not start', 60_000);
    child.kill(sig);
    assert.equal(await exited, sig === 'SIGINT' ? 130 : 143);
    await eventually(() => running().length === 0, 'step processes remain');
    assert.deepEqual(mountsMentioning(root), []);
    for (const h of discoverHierarchies()) {
      assert.deepEqual(readdirSync(h.base).filter((n) => n.startsWith(`kiln-${child.pid}-`)), []);
    }
  });
}

test('after everything: no mount and no process of these builds remain', async () => {
  assert.deepEqual(mountsMentioning(work), []);
  await eventually(() => !hostProcesses().some((p) => p.cmdline.some((a) => a.includes(work)) || p.cmdline.some((a) => a.includes('sig-marker-'))), 'processes remain');
});
