// `--ssh` end to end through the CLI, with OpenSSH's own tools on both sides: steps run the
// host's ssh-add and ssh-keygen (test/helpers/ssh-tools-rootfs.ts) against the agent kiln gives
// RUN --mount=type=ssh, and git sources are fetched from a real sshd on loopback
// (test/helpers/sshd.ts). Covered: key files in OpenSSH, PEM and PKCS#8 form served by kiln
// (listed and signing, checked by ssh-keygen -Y verify on the host), an id other than default,
// a host agent socket that a step can use but not change, the flag's errors, git over ssh with
// the --ssh default agent or the one in kiln's environment, and nothing left running afterwards.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { runKiln, type RunResult } from '../helpers/kiln.js';
import { BUSYBOX_DOCKERFILE } from '../helpers/busybox.js';
import { makeSshToolsRootfs } from '../helpers/ssh-tools-rootfs.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { git, makeRepo } from '../helpers/git-daemon.js';
import { hostProcesses, type HostProc } from '../sandbox/procs.js';
import { assertOk } from './fixture.js';

const BASE = 'kiln.test/ssh-tools:base';

let work: string;
let root: string;
let sshd: Sshd;
/** The folder of the bare repositories sshd serves, by their absolute paths. */
let served: string;
let repoUrl: string;
let ctxRepoUrl: string;
let scpCtxRepo: string;

interface KeyPair {
  key: string;
  pub: string;
  /** `TYPE BASE64` of the public key, without its comment: what an agent's listing must show. */
  id: string;
}

let ed25519: KeyPair;
let rsaPem: KeyPair;
let ecdsaPkcs8: KeyPair;
let encrypted: KeyPair;
/** The one key sshd lets in. */
let gitKey: KeyPair;

const agents: ChildProcess[] = [];

/** A key made by the host's ssh-keygen with `args` (type, size, format, passphrase). */
function keygen(dir: string, name: string, args: string[], passphrase = ''): KeyPair {
  const key = join(dir, name);
  execFileSync('ssh-keygen', ['-q', ...args, '-N', passphrase, '-C', `kiln-test-${name}`, '-f', key], { stdio: 'ignore' });
  const pub = `${key}.pub`;
  return { key, pub, id: publicId(readFileSync(pub, 'utf8')) };
}

function publicId(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}

/** A bare copy of a working repository, at `bare`. */
function bareClone(workDir: string, bare: string): void {
  git(workDir, 'clone', '-q', '--bare', '.', bare);
}

before(async () => {
  work = await tempDir('kiln-ssh-');
  root = join(work, 'store');
  const rootfs = join(work, 'rootfs');
  await makeSshToolsRootfs(rootfs);
  await writeFile(join(rootfs, 'Dockerfile'), BUSYBOX_DOCKERFILE);
  assertOk(await runKiln(['build', '--root', root, '-t', BASE, '-q', rootfs]));

  const keys = join(work, 'keys');
  await mkdir(keys);
  ed25519 = keygen(keys, 'ed25519', ['-t', 'ed25519']);
  rsaPem = keygen(keys, 'rsa-pem', ['-t', 'rsa', '-b', '3072', '-m', 'PEM']);
  ecdsaPkcs8 = keygen(keys, 'ecdsa-pkcs8', ['-t', 'ecdsa', '-b', '256', '-m', 'PKCS8']);
  encrypted = keygen(keys, 'encrypted', ['-t', 'ed25519'], 'secret');
  gitKey = keygen(keys, 'git', ['-t', 'ed25519']);

  sshd = await startSshd(join(work, 'sshd'));
  sshd.authorize(readFileSync(gitKey.pub, 'utf8'));
  served = join(work, 'served');
  await mkdir(served);
  const repoWork = join(work, 'repo-work');
  await makeRepo(repoWork, { 'hello.txt': 'over ssh\n' });
  bareClone(repoWork, join(served, 'repo.git'));
  const ctxWork = join(work, 'ctx-work');
  await makeRepo(ctxWork, { 'Dockerfile': 'FROM scratch\nCOPY . /ctx/\n', 'in-context.txt': 'from the ssh context\n' });
  bareClone(ctxWork, join(served, 'ctxrepo.git'));
  repoUrl = `ssh://root@127.0.0.1:${sshd.port}${served}/repo.git`;
  ctxRepoUrl = `ssh://root@127.0.0.1:${sshd.port}${served}/ctxrepo.git`;
  // scp-like names carry no port: the ssh command given to git brings it (sshEnv's port).
  scpCtxRepo = `root@127.0.0.1:${served}/ctxrepo.git`;
});

after(async () => {
  stopAgents();
  await sshd?.stop();
});

function stopAgents(): void {
  for (const a of agents.splice(0)) a.kill('SIGTERM');
}

/** A real ssh-agent on the host, at `sock`, holding `keys`. Stopped by stopAgents. */
async function startAgent(sock: string, keys: KeyPair[]): Promise<void> {
  const child = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  agents.push(child);
  for (let i = 0; !existsSync(sock); i++) {
    if (i > 200 || child.exitCode !== null) throw new Error(`ssh-agent did not listen on ${sock}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  if (keys.length) execFileSync('ssh-add', ['-q', ...keys.map((k) => k.key)], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
}

/** What the host's ssh-add -L says of the agent at `sock`, as key ids. */
function hostAgentIds(sock: string): string[] {
  const out = execFileSync('ssh-add', ['-L'], { env: { ...process.env, SSH_AUTH_SOCK: sock }, encoding: 'utf8' });
  return out.split('\n').filter(Boolean).map(publicId);
}

interface Build extends RunResult {
  seconds: number;
}

interface BuildOptions {
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/**
 * `kiln build --no-cache --progress plain ARGS`, standard input closed. The agent does not take
 * part in a step's key, so --no-cache makes each step see this build's agent, not an earlier
 * test's output. kiln gets no SSH_AUTH_SOCK unless `env` gives one.
 */
async function kilnBuild(args: string[], opts: BuildOptions = {}): Promise<Build> {
  const start = Date.now();
  const r = await runKiln(['build', '--root', root, '--no-cache', '--progress', 'plain', ...args], {
    env: { SSH_AUTH_SOCK: undefined, ...opts.env },
    timeoutMs: opts.timeoutMs ?? 120_000,
  });
  return { ...r, seconds: (Date.now() - start) / 1000 };
}

/** kilnBuild of a context holding `dockerfile` and copies of `files`. */
async function build(dockerfile: string, flags: string[], opts: BuildOptions & { files?: string[] } = {}): Promise<Build> {
  const ctx = await tempDir('kiln-ssh-ctx-');
  await writeFile(join(ctx, 'Dockerfile'), dockerfile);
  for (const f of opts.files ?? []) await copyFile(f, join(ctx, basename(f)));
  return kilnBuild([...flags, ctx], opts);
}

/** Key ids in a step's output (plain progress prefixes each line with `#N SECONDS`). */
function idsIn(output: string): string[] {
  return [...output.matchAll(/\b((?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+)/g)].map((m) => m[1]!);
}

test('the ssh tools rootfs: a step runs the host\'s ssh-keygen, ssh-add and ssh', async () => {
  const r = await build(`FROM ${BASE}\nRUN ssh-keygen -q -t ed25519 -N "" -f /k && cat /k.pub && ssh -V && ssh-add -L; echo "ssh-add rc=$?"\n`, []);
  assertOk(r);
  assert.match(r.stderr, /ssh-ed25519 AAAA/);
  assert.match(r.stderr, /OpenSSH_/);
  // No agent in this step: ssh-add runs and says so.
  assert.match(r.stderr, /Could not open a connection to your authentication agent/);
  assert.match(r.stderr, /ssh-add rc=2/);
});

test('--ssh default=KEYFILE,...: an OpenSSH ed25519, a PEM RSA and a PKCS#8 ECDSA key are listed and sign, verified on the host', async () => {
  const keys = [ed25519, rsaPem, ecdsaPkcs8];
  const msg = join(work, 'msg');
  await writeFile(msg, 'signed through the agent kiln serves\n');
  const out = join(work, 'sign-out');
  const r = await build([
    `FROM ${BASE}`,
    'COPY ed25519.pub rsa-pem.pub ecdsa-pkcs8.pub msg /in/',
    // Only the public halves are in the image: ssh-keygen signs with the agent's key that matches.
    'RUN --mount=type=ssh mkdir /out && ssh-add -L > /out/keys.txt && for k in ed25519 rsa-pem ecdsa-pkcs8; do ssh-keygen -Y sign -f /in/$k.pub -n file < /in/msg > /out/$k.sig || exit 1; done',
    '',
  ].join('\n'), ['--ssh', `default=${keys.map((k) => k.key).join(',')}`, '-o', `type=local,dest=${out}`], { files: [...keys.map((k) => k.pub), msg] });
  assertOk(r);
  const listed = (await readFile(join(out, 'out/keys.txt'), 'utf8')).split('\n').filter(Boolean).map(publicId);
  assert.deepEqual(listed.sort(), keys.map((k) => k.id).sort());
  for (const k of keys) {
    const allowed = join(work, `allowed-${basename(k.key)}`);
    await writeFile(allowed, `signer ${k.id}\n`);
    const verified = execFileSync('ssh-keygen', ['-Y', 'verify', '-f', allowed, '-I', 'signer', '-n', 'file', '-s', join(out, 'out', `${basename(k.key)}.sig`)], {
      input: readFileSync(msg), encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'],
    });
    assert.match(verified, /Good "file" signature for signer/);
  }
});

test('--ssh ID=KEYFILE: a step mounts that agent with id=ID, and the default id has none', async () => {
  const r = await build([
    `FROM ${BASE}`,
    'RUN --mount=type=ssh,id=work ssh-add -L',
    // Markers are computed, so that the step's command line, which plain progress shows, lacks them.
    'RUN --mount=type=ssh,required=false test ! -e "$SSH_AUTH_SOCK" && echo "no-default-$((6 * 7))"',
    '',
  ].join('\n'), ['--ssh', `work=${ed25519.key}`]);
  assertOk(r);
  assert.deepEqual(idsIn(r.stderr), [ed25519.id]);
  assert.match(r.stderr, /no-default-42/);
});

test('--ssh default=SOCKET and --ssh default ($SSH_AUTH_SOCK): a step lists the host agent\'s key', async () => {
  const sock = join(work, 'list-agent.sock');
  await startAgent(sock, [ed25519]);
  try {
    const given = await build(`FROM ${BASE}\nRUN --mount=type=ssh ssh-add -L\n`, ['--ssh', `default=${sock}`]);
    assertOk(given);
    assert.deepEqual(idsIn(given.stderr), [ed25519.id]);
    const fromEnv = await build(`FROM ${BASE}\nRUN --mount=type=ssh ssh-add -L\n`, ['--ssh', 'default'], { env: { SSH_AUTH_SOCK: sock } });
    assertOk(fromEnv);
    assert.deepEqual(idsIn(fromEnv.stderr), [ed25519.id]);
  } finally {
    stopAgents();
  }
});

test('the step\'s agent is read-only: ssh-add -D and ssh-add KEY fail in the step, and the host agent keeps its key', async () => {
  const sock = join(work, 'ro-agent.sock');
  await startAgent(sock, [ed25519]);
  try {
    const r = await build([
      `FROM ${BASE}`,
      'RUN --mount=type=ssh echo before; ssh-add -L; ssh-add -D; echo "delete rc=$?"; ssh-keygen -q -t ed25519 -N "" -f /tmp/extra && ssh-add /tmp/extra; echo "add rc=$?"; echo after; ssh-add -L',
      '',
    ].join('\n'), ['--ssh', `default=${sock}`]);
    assertOk(r);
    assert.match(r.stderr, /delete rc=[1-9]/);
    assert.match(r.stderr, /add rc=[1-9]/);
    const [before, afterwards] = r.stderr.split(/\bafter\n/);
    assert.deepEqual(idsIn(before!.split(/\bbefore\n/)[1]!), [ed25519.id]);
    assert.deepEqual(idsIn(afterwards!), [ed25519.id]);
    assert.deepEqual(hostAgentIds(sock), [ed25519.id]);
  } finally {
    stopAgents();
  }
});

test('--ssh errors exit 2 naming the flag, before any step: a missing path, a passphrase, not a key, a socket with keys', async () => {
  const sock = join(work, 'mixed-agent.sock');
  await startAgent(sock, []);
  const notKey = join(work, 'not-a-key.txt');
  await writeFile(notKey, 'just some text\n');
  const missing = join(work, 'no-such-key');
  try {
    const cases: Array<[string, RegExp[]]> = [
      [`default=${missing}`, [/--ssh default\b/, /no-such-key/]],
      [`default=${encrypted.key}`, [/--ssh default\b/, /passphrase/]],
      [`default=${notKey}`, [/--ssh default\b/, /not-a-key\.txt/]],
      [`default=${sock},${ed25519.key}`, [/--ssh default\b/]],
      [`default=${ed25519.key},${sock}`, [/--ssh default\b/]],
    ];
    for (const [flag, messages] of cases) {
      // The step would print 42; its command line (which plain progress shows) does not hold it.
      const r = await build(`FROM ${BASE}\nRUN --mount=type=ssh echo "ran-$((6 * 7))"\n`, ['--ssh', flag]);
      assert.equal(r.code, 2, `--ssh ${flag}: ${r.stderr}`);
      for (const m of messages) assert.match(r.stderr, m, `--ssh ${flag}`);
      assert.ok(!r.stderr.includes('ran-42') && !r.stdout.includes('ran-42'), `a step ran with --ssh ${flag}:\n${r.stderr}`);
    }
  } finally {
    stopAgents();
  }
});

/**
 * kiln's environment for git over ssh: this sshd's host key alone is known, no user or system
 * ssh configuration is read, and there is no agent unless `agent` is given.
 */
function sshEnv(knownHosts: string, agent?: string, port?: number): Record<string, string | undefined> {
  const ssh = ['ssh', '-F', '/dev/null', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes'];
  if (port !== undefined) ssh.push('-o', `Port=${port}`);
  return { GIT_SSH_COMMAND: ssh.join(' '), SSH_AUTH_SOCK: agent };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('git over ssh with --ssh default=KEYFILE: ADD, the context and a --build-context; without it the step fails naming the line and the repository', async () => {
  const env = sshEnv(sshd.knownHostsFile);
  const out = join(work, 'git-add-out');
  const add = await build(`FROM scratch\nADD ${repoUrl}#main /src\n`, ['--ssh', `default=${gitKey.key}`, '-o', `type=local,dest=${out}`], { env });
  assertOk(add);
  assert.equal(await readFile(join(out, 'src/hello.txt'), 'utf8'), 'over ssh\n');

  const none = await build(`FROM scratch\nADD ${repoUrl}#main /src\n`, [], { env, timeoutMs: 60_000 });
  assert.notEqual(none.code, 0, none.stderr);
  assert.equal(none.signal, null, 'kiln hung and was killed');
  assert.ok(none.seconds < 30, `took ${none.seconds} s`);
  // The repository as kiln names it in messages: without the user, which could hold a credential.
  assert.match(none.stderr, new RegExp(`Dockerfile:2:1: .*127\\.0\\.0\\.1:${sshd.port}${escape(served)}/repo\\.git`));

  const ctxOut = join(work, 'git-ctx-out');
  const asContext = await kilnBuild(['--ssh', `default=${gitKey.key}`, '-o', `type=local,dest=${ctxOut}`, ctxRepoUrl], { env });
  assertOk(asContext);
  assert.equal(await readFile(join(ctxOut, 'ctx/in-context.txt'), 'utf8'), 'from the ssh context\n');

  const namedOut = join(work, 'git-named-out');
  const named = await build('FROM scratch\nCOPY --from=remote in-context.txt /named.txt\n', ['--ssh', `default=${gitKey.key}`, '--build-context', `remote=${ctxRepoUrl}`, '-o', `type=local,dest=${namedOut}`], { env });
  assertOk(named);
  assert.equal(await readFile(join(namedOut, 'named.txt'), 'utf8'), 'from the ssh context\n');
});

test('git over ssh without --ssh uses the agent in kiln\'s environment: ADD, and an scp-like --build-context', async () => {
  const sock = join(work, 'git-agent.sock');
  await startAgent(sock, [gitKey]);
  try {
    const env = sshEnv(sshd.knownHostsFile, sock);
    const out = join(work, 'git-env-out');
    const add = await build(`FROM scratch\nADD ${repoUrl}#main /src\n`, ['-o', `type=local,dest=${out}`], { env });
    assertOk(add);
    assert.equal(await readFile(join(out, 'src/hello.txt'), 'utf8'), 'over ssh\n');

    const namedOut = join(work, 'git-env-scp-out');
    const named = await build('FROM scratch\nCOPY --from=remote in-context.txt /named.txt\n', ['--build-context', `remote=${scpCtxRepo}`, '-o', `type=local,dest=${namedOut}`], {
      env: sshEnv(sshd.knownHostsFile, sock, sshd.port),
    });
    assertOk(named);
    assert.equal(await readFile(join(namedOut, 'named.txt'), 'utf8'), 'from the ssh context\n');
  } finally {
    stopAgents();
  }
});

test('git over ssh to a host known_hosts lacks fails quickly, saying so', async () => {
  const empty = join(work, 'empty_known_hosts');
  await writeFile(empty, '');
  const r = await build(`FROM scratch\nADD ${repoUrl}#main /src\n`, ['--ssh', `default=${gitKey.key}`], { env: sshEnv(empty), timeoutMs: 60_000 });
  assert.notEqual(r.code, 0, r.stderr);
  assert.equal(r.signal, null, 'kiln hung and was killed');
  assert.ok(r.seconds < 30, `took ${r.seconds} s`);
  assert.match(r.stderr, /Dockerfile:2:1: /);
  assert.match(r.stderr, /[Hh]ost key/);
});

/** When a process started, in clock ticks since boot (/proc/PID/stat's 22nd field). */
function startTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

/**
 * sshd processes started since this file began that no older sshd serves: what our sshd left.
 * Its per-connection children retitle themselves (`sshd: root [priv]`), so they cannot be told
 * by their arguments; a login to the machine's own sshd meanwhile has that sshd as an ancestor.
 */
function orphanedSshds(): HostProc[] {
  const since = startTicks(process.pid);
  const procs = hostProcesses();
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const isSshd = (p: HostProc) => /\/sshd$/.test(p.exe);
  const ticks = (p: HostProc) => {
    try {
      return startTicks(p.pid);
    } catch {
      return 0; // gone since the listing
    }
  };
  const servedByOlder = (p: HostProc): boolean => {
    for (let q = byPid.get(p.ppid); q; q = byPid.get(q.ppid)) if (isSshd(q) && ticks(q) < since) return true;
    return false;
  };
  return procs.filter((p) => isSshd(p) && ticks(p) >= since && !servedByOlder(p));
}

test('nothing left behind: no sshd, ssh-agent or kiln of these tests is running once they stop', async () => {
  stopAgents();
  await sshd.stop();
  const ours = () => hostProcesses().filter((p) => p.pid !== process.pid && p.cmdline.some((a) => a.includes(work)));
  for (let i = 0; ours().length > 0 && i < 100; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(ours().map((p) => `${p.pid} ${p.cmdline.join(' ')}`), []);
  assert.deepEqual(orphanedSshds().map((p) => `${p.pid} ${p.cmdline.join(' ')}`), []);
});
