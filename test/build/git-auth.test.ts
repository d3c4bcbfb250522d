// BuildKit's git authentication secrets through the CLI, against `git http-backend` behind a
// check of the Authorization header: GIT_AUTH_TOKEN and GIT_AUTH_HEADER, each also for one host,
// reach ADD's repositories (their submodules too), a repository as the context and a
// --build-context; the secret never shows, on git's command line, in kiln's output, in the image
// or in the store, and never changes a cache key.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { git, makeRepo, publish } from '../helpers/git-daemon.js';
import { basicAuth, startGitHttp, type GitHttpServer } from '../helpers/git-http.js';
import { runKiln, type RunResult } from '../helpers/kiln.js';
import { readTree } from '../exporter/tree.js';
import { assertOk, buildJson, cachedSteps, ranSteps, type BuildRun } from './fixture.js';
import { filesUnder } from '../helpers/files.js';

const TOKEN = 'kiln-git-token-5c1e9b7d';
const WRONG = 'kiln-wrong-token-0a4f2e61';
const BEARER = 'kiln-bearer-8d3b6c20';
const TOKEN_HEADER = basicAuth('x-access-token', TOKEN);

let server: GitHttpServer;
let repo: string;
let ctxRepo: string;
/** A `git` first on PATH that writes down its arguments, then runs the real one. */
let gitLog: string;
let pathWithLog: string;

before(async () => {
  const d = await tempDir('kiln-git-auth-');
  server = await startGitHttp(join(d, 'served'), TOKEN_HEADER);
  const lib = join(d, 'lib');
  await makeRepo(lib, { 'lib.txt': 'in the private submodule\n' });
  publish(server, lib, 'lib');
  const work = join(d, 'work');
  await makeRepo(work, { 'app/private.txt': 'private v1\n' });
  // Branch withsub has a submodule on the same server, as private as the repository. It is
  // recorded by hand: a git run here that asked the server would wait on this very process.
  git(work, 'checkout', '-q', '-b', 'withsub');
  git(work, 'update-index', '--add', '--cacheinfo', `160000,${git(lib, 'rev-parse', 'HEAD')},lib`);
  await writeFile(join(work, '.gitmodules'), `[submodule "lib"]\n\tpath = lib\n\turl = ${server.url}lib.git\n`);
  git(work, 'add', '.gitmodules');
  git(work, 'commit', '-q', '-m', 'submodule');
  git(work, 'checkout', '-q', '-f', 'main');
  publish(server, work, 'private');
  repo = `${server.url}private.git`;
  const ctxWork = join(d, 'ctx-work');
  await makeRepo(ctxWork, { 'Dockerfile': 'FROM scratch\nCOPY . /ctx/\n', 'in-context.txt': 'from the private context\n' });
  publish(server, ctxWork, 'ctx');
  ctxRepo = `${server.url}ctx.git`;

  const bin = join(d, 'bin');
  await mkdir(bin);
  gitLog = join(d, 'git-args.log');
  const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  await writeFile(join(bin, 'git'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${gitLog}'\nexec '${realGit}' "$@"\n`);
  await chmod(join(bin, 'git'), 0o755);
  pathWithLog = `${bin}:${process.env.PATH}`;
});
after(() => server.stop());

/** A build with `secrets` (id -> value) given as --secret id=ID,env=VAR, stdin closed, git's arguments logged. */
function buildWith(root: string, ctx: string, secrets: Record<string, string>, extra: string[] = []): Promise<BuildRun> {
  const env: Record<string, string> = { PATH: pathWithLog };
  const flags: string[] = [];
  Object.entries(secrets).forEach(([id, value], i) => {
    env[`KILN_TEST_GIT_SECRET_${i}`] = value;
    flags.push('--secret', `id=${id},env=KILN_TEST_GIT_SECRET_${i}`);
  });
  return buildJson(root, ctx, [...flags, ...extra], { env, timeoutMs: 120_000 });
}

/** No secret, nor the header made of one, in what kiln printed. */
function assertQuiet(r: RunResult): void {
  for (const s of [TOKEN, WRONG, BEARER, Buffer.from(`x-access-token:${TOKEN}`).toString('base64'), Buffer.from(`x-access-token:${WRONG}`).toString('base64')]) {
    assert.ok(!r.stderr.includes(s) && !r.stdout.includes(s), `a secret in kiln's output:\n${r.stderr}`);
  }
}

function assertFailed(r: RunResult): void {
  assert.notEqual(r.code, 0, r.stderr);
  assert.equal(r.signal, null, 'kiln hung and was killed');
  assertQuiet(r);
}

async function contextWith(dockerfile: string): Promise<string> {
  const ctx = await tempDir('kiln-git-auth-ctx-');
  await writeFile(join(ctx, 'Dockerfile'), dockerfile);
  return ctx;
}

test('ADD of a private http repository: GIT_AUTH_TOKEN gets it, submodule too; without it, or with a wrong one, the step fails naming the line and the repository', async () => {
  const d = await tempDir();
  const root = join(d, 'store');
  const ctx = await contextWith(`FROM scratch\nADD ${repo}#withsub /src/\n`);
  const out = join(d, 'out');
  await rm(gitLog, { force: true });
  const ok = await buildWith(root, ctx, { GIT_AUTH_TOKEN: TOKEN }, ['-t', 'kiln.test/git-auth:v1', '-o', `type=local,dest=${out}`]);
  assertOk(ok);
  assertQuiet(ok);
  assert.equal(await readFile(join(out, 'src/app/private.txt'), 'utf8'), 'private v1\n');
  assert.equal(await readFile(join(out, 'src/lib/lib.txt'), 'utf8'), 'in the private submodule\n');
  // git ran with the secret in its environment, never on its command line.
  const args = await readFile(gitLog, 'utf8');
  assert.match(args, /ls-remote/);
  assert.ok(!args.includes(TOKEN) && !args.includes(TOKEN_HEADER.slice(6)), args);

  // Not in the image (its history included) nor anywhere in the store.
  const history = await runKiln(['history', '--root', root, '--json', '--no-trunc', 'kiln.test/git-auth:v1']);
  assertOk(history);
  assert.match(history.stdout, /private\.git#withsub/);
  const layout = join(d, 'layout');
  assertOk(await buildWith(root, ctx, { GIT_AUTH_TOKEN: TOKEN }, ['-o', `type=oci,dest=${layout},tar=false`]));
  for (const dir of [root, layout]) {
    for (const [p, data] of filesUnder(dir)) {
      assert.ok(!data.includes(TOKEN) && !data.includes(TOKEN_HEADER.slice(6)), `the token found in ${p}`);
    }
  }

  // No secret: git is refused and does not prompt; the error names the line and the repository.
  const none = await buildWith(join(d, 'store-none'), ctx, {});
  assertFailed(none);
  assert.match(none.stderr, new RegExp(`Dockerfile:2:1: .*git ${repo.replace(/[.]/g, '\\.')}: .*--secret id=GIT_AUTH_TOKEN`));
  // A wrong token: refused, and said so without showing it.
  const wrong = await buildWith(join(d, 'store-wrong'), ctx, { GIT_AUTH_TOKEN: WRONG });
  assertFailed(wrong);
  assert.match(wrong.stderr, /Dockerfile:2:1: .*private\.git: .*the server refused the secret GIT_AUTH_TOKEN/);
});

test('a secret does not change the step\'s key: a new token for the same commit finds the step cached', async () => {
  const d = await tempDir();
  const root = join(d, 'store');
  const ctx = await contextWith(`FROM scratch\nADD ${repo} /src/\n`);
  const first = await buildWith(root, ctx, { GIT_AUTH_TOKEN: TOKEN }, ['--explain']);
  assertOk(first);
  assertQuiet(first);
  server.authorization = basicAuth('x-access-token', WRONG);
  try {
    const again = await buildWith(root, ctx, { GIT_AUTH_TOKEN: WRONG }, ['--explain']);
    assertOk(again);
    assertQuiet(again);
    assert.deepEqual(ranSteps(again), []);
    assert.deepEqual(cachedSteps(again), [`ADD ${repo} /src/`]);
  } finally {
    server.authorization = TOKEN_HEADER;
  }
});

test('GIT_AUTH_TOKEN.<host>: for that host (with or without its port) and before the generic one; a token for another host is not sent', async () => {
  const d = await tempDir();
  const ctx = await contextWith(`FROM scratch\nADD ${repo}#main:app /app/\n`);
  const host = new URL(server.url).host;
  const byHost = await buildWith(join(d, 's1'), ctx, { 'GIT_AUTH_TOKEN.127.0.0.1': TOKEN, GIT_AUTH_TOKEN: WRONG }, ['-o', `type=local,dest=${join(d, 'o1')}`]);
  assertOk(byHost);
  assertQuiet(byHost);
  assert.equal(await readFile(join(d, 'o1/app/private.txt'), 'utf8'), 'private v1\n');
  const byHostPort = await buildWith(join(d, 's2'), ctx, { [`GIT_AUTH_TOKEN.${host}`]: TOKEN }, ['-o', `type=local,dest=${join(d, 'o2')}`]);
  assertOk(byHostPort);

  server.seen.length = 0;
  const elsewhere = await buildWith(join(d, 's3'), ctx, { 'GIT_AUTH_TOKEN.example.com': TOKEN });
  assertFailed(elsewhere);
  assert.ok(server.seen.length > 0 && server.seen.every((h) => h === undefined), `sent: ${server.seen.join(', ')}`);
  assert.match(elsewhere.stderr, /--secret id=GIT_AUTH_TOKEN/);
});

test('GIT_AUTH_HEADER: the whole Authorization value (a bearer token), before GIT_AUTH_TOKEN', async () => {
  const d = await tempDir();
  const ctx = await contextWith(`FROM scratch\nADD ${repo}#main:app /app/\n`);
  server.authorization = `Bearer ${BEARER}`;
  try {
    const header = await buildWith(join(d, 's1'), ctx, { GIT_AUTH_HEADER: `bearer ${BEARER}`, GIT_AUTH_TOKEN: TOKEN }, ['-o', `type=local,dest=${join(d, 'o1')}`]);
    assertOk(header);
    assertQuiet(header);
    assert.deepEqual(Object.keys(await readTree(join(d, 'o1'))), ['app', 'app/private.txt']);
    const hostHeader = await buildWith(join(d, 's2'), ctx, { 'GIT_AUTH_HEADER.127.0.0.1': `bearer ${BEARER}` });
    assertOk(hostHeader);
    // The token alone is basic auth, which this server does not take.
    const tokenOnly = await buildWith(join(d, 's3'), ctx, { GIT_AUTH_TOKEN: TOKEN });
    assertFailed(tokenOnly);
    const wrongHeader = await buildWith(join(d, 's4'), ctx, { GIT_AUTH_HEADER: `bearer ${WRONG}` });
    assertFailed(wrongHeader);
    assert.match(wrongHeader.stderr, /the server refused the secret GIT_AUTH_HEADER/);
  } finally {
    server.authorization = TOKEN_HEADER;
  }
});

test('a private repository over http as the context and as a --build-context, with GIT_AUTH_TOKEN', async () => {
  const d = await tempDir();
  const root = join(d, 'store');
  const asContext = await buildWith(root, ctxRepo, { GIT_AUTH_TOKEN: TOKEN }, ['-o', `type=local,dest=${join(d, 'o1')}`]);
  assertOk(asContext);
  assertQuiet(asContext);
  assert.equal(await readFile(join(d, 'o1/ctx/in-context.txt'), 'utf8'), 'from the private context\n');

  const local = await contextWith('FROM scratch\nCOPY --from=priv in-context.txt /named.txt\n');
  const named = await buildWith(root, local, { GIT_AUTH_TOKEN: TOKEN }, ['--build-context', `priv=${ctxRepo}`, '-o', `type=local,dest=${join(d, 'o2')}`]);
  assertOk(named);
  assertQuiet(named);
  assert.equal(await readFile(join(d, 'o2/named.txt'), 'utf8'), 'from the private context\n');

  const noSecret = await buildWith(root, ctxRepo, {});
  assertFailed(noSecret);
  assert.match(noSecret.stderr, new RegExp(`git ${ctxRepo.replace(/[.]/g, '\\.')}: .*--secret id=GIT_AUTH_TOKEN`));
  const wrong = await buildWith(root, local, { GIT_AUTH_TOKEN: WRONG }, ['--build-context', `priv=${ctxRepo}`]);
  assertFailed(wrong);
  assert.match(wrong.stderr, /the server refused the secret GIT_AUTH_TOKEN/);
});
