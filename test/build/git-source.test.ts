// Git sources through the CLI, against `git daemon` on loopback: ADD <git ref> (a branch, a
// tag's folder, a commit, --keep-git-dir, --chown, --checksum), keyed by the commit the ref
// names, so a rebuild runs again exactly the steps whose ref moved.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { commitFiles, git, makeRepo, publish, startGitDaemon, type GitDaemon } from '../helpers/git-daemon.js';
import { readTree } from '../exporter/tree.js';
import { assertOk, buildJson, cachedSteps, ranSteps } from './fixture.js';

let daemon: GitDaemon;
let work: string;
let first: string;
before(async () => {
  const d = await tempDir('kiln-git-');
  daemon = await startGitDaemon(join(d, 'served'));
  work = join(d, 'work');
  await makeRepo(work, { 'README': 'readme\n', 'app/main.txt': 'main v1\n', 'app/run.sh': '#!/bin/sh\necho run\n', 'app/sub/x.txt': 'x\n' });
  first = git(work, 'rev-parse', 'HEAD');
  git(work, 'tag', '-a', 'v1', '-m', 'v1');
  git(work, 'checkout', '-q', '-b', 'feature');
  await commitFiles(work, { 'feature.txt': 'feature\n' }, 'feature');
  await commitFiles(work, { 'feature2.txt': 'feature 2\n' }, 'feature 2');
  git(work, 'checkout', '-q', 'main');
  await commitFiles(work, { 'app/main.txt': 'main v2\n' }, 'second');
  // Branch withsub has a submodule, served beside it.
  const sub = join(d, 'sub');
  await makeRepo(sub, { 's.txt': 'in submodule\n' });
  publish(daemon, sub, 'sub');
  git(work, 'checkout', '-q', '-b', 'withsub');
  git(work, '-c', 'protocol.git.allow=always', 'submodule', 'add', '-q', `${daemon.url}sub.git`, 'lib');
  await commitFiles(work, {}, 'submodule');
  git(work, 'checkout', '-q', '-f', 'main');
  await rm(join(work, 'lib'), { recursive: true, force: true });
  publish(daemon, work, 'repo');
});
after(() => daemon.stop());

test('ADD <git ref>: a branch, a tag\'s folder, a commit, --keep-git-dir, --chown; cached by commit; --checksum and bad refs fail', async () => {
  const d = await tempDir();
  const ctx = join(d, 'ctx');
  const repo = `${daemon.url}repo.git`;
  const dockerfile = [
    'FROM scratch',
    `ADD ${repo}#v1:app /app-v1`,
    `ADD --chown=5:6 ${repo}#${first} /by-commit/`,
    `ADD --keep-git-dir=true ${repo}#feature /with-git/`,
    `ADD ${repo} /head/`,
  ].join('\n') + '\n';
  await mkdir(ctx);
  await writeFile(join(ctx, 'Dockerfile'), dockerfile);
  const root = join(d, 'store');
  const out = join(d, 'out');
  const r = await buildJson(root, ctx, ['-o', `type=local,dest=${out}`]);
  assertOk(r);
  const tree = await readTree(out);
  assert.deepEqual(Object.keys(tree).filter((p) => !p.startsWith('with-git/.git/')), [
    'app-v1', 'app-v1/main.txt', 'app-v1/run.sh', 'app-v1/sub', 'app-v1/sub/x.txt',
    'by-commit', 'by-commit/README', 'by-commit/app', 'by-commit/app/main.txt', 'by-commit/app/run.sh', 'by-commit/app/sub', 'by-commit/app/sub/x.txt',
    'head', 'head/README', 'head/app', 'head/app/main.txt', 'head/app/run.sh', 'head/app/sub', 'head/app/sub/x.txt',
    'with-git', 'with-git/.git', 'with-git/README', 'with-git/app', 'with-git/app/main.txt', 'with-git/app/run.sh', 'with-git/app/sub', 'with-git/app/sub/x.txt', 'with-git/feature.txt', 'with-git/feature2.txt',
  ]);
  assert.equal(await readFile(join(out, 'head/app/main.txt'), 'utf8'), 'main v2\n');
  assert.equal(await readFile(join(out, 'app-v1/main.txt'), 'utf8'), 'main v1\n');
  assert.equal(await readFile(join(out, 'by-commit/app/main.txt'), 'utf8'), 'main v1\n');
  assert.deepEqual([tree['head/app/run.sh']!.mode, tree['head/app/run.sh']!.owner, tree['head/README']!.mode], ['755', '0:0', '644']);
  assert.deepEqual([tree['by-commit/README']!.owner, tree['by-commit']!.owner], ['5:6', '5:6']);
  // The checkout in .git is the commit the branch names.
  assert.equal(git(join(out, 'with-git'), 'rev-parse', 'HEAD'), git(work, 'rev-parse', 'feature'));

  // Nothing moved: every step is cached.
  const again = await buildJson(root, ctx, ['-o', `type=local,dest=${join(d, 'out2')}`]);
  assertOk(again);
  assert.deepEqual(ranSteps(again), []);
  assert.equal(cachedSteps(again).length, 4);

  // The branch moves: the step reading it runs again (HEAD is main), the others are cached.
  await commitFiles(work, { 'app/main.txt': 'main v3\n' }, 'third');
  publish(daemon, work, 'repo');
  const before = git(work, 'rev-parse', 'main~1');
  const moved = await buildJson(root, ctx, ['--explain', '-o', `type=local,dest=${join(d, 'out3')}`]);
  assertOk(moved);
  // --explain says which ref moved, from which commit to which.
  assert.ok(moved.stderr.includes(`ADD ${repo} /head/: git ref ${repo}#HEAD moved ${before.slice(0, 12)} -> ${git(work, 'rev-parse', 'main').slice(0, 12)}`), moved.stderr);
  assert.deepEqual(ranSteps(moved), [`ADD ${repo} /head/`]);
  assert.equal(cachedSteps(moved).length, 3);
  assert.equal(await readFile(join(d, 'out3/head/app/main.txt'), 'utf8'), 'main v3\n');

  // --checksum names the commit; another commit fails the step, naming both.
  await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nADD --checksum=${first.slice(0, 12)} ${repo}#main /x/\n`);
  const bad = await buildJson(root, ctx, ['-o', `type=local,dest=${join(d, 'out4')}`]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, new RegExp(`Dockerfile:2:1: .*checksum mismatch: --checksum is ${first.slice(0, 12)} but the ref is at commit ${git(work, 'rev-parse', 'main')}`));
  assert.equal(existsSync(join(d, 'out4')), false);
  await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nADD --checksum=${first} ${repo}#v1 /x/\n`);
  assertOk(await buildJson(root, ctx, ['-o', `type=local,dest=${join(d, 'out5')}`]));

  // A server that serves only the commits it advertises (git's protocol v0 defaults): a commit
  // below the tip of a branch other than HEAD's is found by fetching the branches.
  const below = git(work, 'rev-parse', 'feature~1');
  await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nADD ${repo}#${below} /old/\n`);
  const v0 = { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'protocol.version', GIT_CONFIG_VALUE_0: '0' };
  assertOk(await buildJson(root, ctx, ['-o', `type=local,dest=${join(d, 'out-v0')}`], { env: v0 }));
  assert.equal(await readFile(join(d, 'out-v0/old/feature.txt'), 'utf8'), 'feature\n');
  assert.equal(existsSync(join(d, 'out-v0/old/feature2.txt')), false);

  // Submodules come with the checkout, without their .git.
  await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nADD ${repo}#withsub /x/\n`);
  assertOk(await buildJson(root, ctx, ['-o', `type=local,dest=${join(d, 'out-sub')}`]));
  assert.equal(await readFile(join(d, 'out-sub/x/lib/s.txt'), 'utf8'), 'in submodule\n');
  assert.deepEqual(Object.keys(await readTree(join(d, 'out-sub'))).filter((p) => p.includes('.git')), ['x/.gitmodules']);

  // A ref the remote lacks, and a folder the repository lacks, are errors that say so.
  await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nADD ${repo}#nope /x/\n`);
  const noRef = await buildJson(root, ctx, ['-o', `type=local,dest=${join(d, 'out6')}`]);
  assert.notEqual(noRef.code, 0);
  assert.match(noRef.stderr, /Dockerfile:2:1: .*no branch or tag named "nope"/);
  await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nADD ${repo}#main:missing /x/\n`);
  const noDir = await buildJson(root, ctx, ['-o', `type=local,dest=${join(d, 'out7')}`]);
  assert.notEqual(noDir.code, 0);
  assert.match(noDir.stderr, /Dockerfile:2:1: .*the repository has no folder missing/);
  // No checkout is left in the store's tmp/.
  assert.deepEqual((await readdir(join(root, 'tmp'))).filter((n) => n.includes('-git')), []);
});

test('a git repository or a URL as the context: a folder of a ref, .git kept on request, -f inside it; a tar or a Dockerfile by URL', async () => {
  const d = await tempDir();
  const repoDir = join(d, 'ctxrepo');
  await makeRepo(repoDir, {
    'top.txt': 'top\n',
    'docker/Dockerfile': 'FROM scratch\nCOPY . /ctx/\n',
    'docker/other.Dockerfile': 'FROM scratch\nCOPY file.txt /other.txt\n',
    'docker/file.txt': 'file\n',
    'docker/x.log': 'ignored\n',
    'docker/.dockerignore': '*.log\n',
  });
  // A symlink leading out of the repository is never followed to the host.
  await symlink('/etc', join(repoDir, 'host-etc'));
  await commitFiles(repoDir, {}, 'a link out');
  git(repoDir, 'tag', 'release');
  publish(daemon, repoDir, 'ctxrepo');
  const root = join(d, 'store');
  const url = `${daemon.url}ctxrepo.git`;

  const out = join(d, 'out');
  assertOk(await buildJson(root, `${url}#release:docker`, ['-o', `type=local,dest=${out}`]));
  // A remote context is read whole: BuildKit reads no .dockerignore of one.
  assert.deepEqual(Object.keys(await readTree(out)), ['ctx', 'ctx/.dockerignore', 'ctx/Dockerfile', 'ctx/file.txt', 'ctx/other.Dockerfile', 'ctx/x.log']);

  const withGit = join(d, 'with-git');
  assertOk(await buildJson(root, url, ['-f', 'docker/Dockerfile', '--build-arg', 'BUILDKIT_CONTEXT_KEEP_GIT_DIR=1', '-o', `type=local,dest=${withGit}`]));
  assert.ok(existsSync(join(withGit, 'ctx/.git/HEAD')));
  assert.equal(await readFile(join(withGit, 'ctx/top.txt'), 'utf8'), 'top\n');

  // The URL query form, and its checksum.
  const byQuery = join(d, 'by-query');
  assertOk(await buildJson(root, `${url}?tag=release&subdir=docker&checksum=${git(repoDir, 'rev-parse', 'HEAD').slice(0, 10)}`, ['-o', `type=local,dest=${byQuery}`]));
  assert.deepEqual(Object.keys(await readTree(byQuery)), Object.keys(await readTree(out)));
  const wrongSum = await buildJson(root, `${url}?branch=main&subdir=docker&checksum=0000000`, ['-o', `type=local,dest=${join(d, 'x0')}`]);
  assert.equal(wrongSum.code, 1);
  assert.match(wrongSum.stderr, /checksum mismatch: the URL's checksum is 0000000 but the ref is at commit [0-9a-f]{40}/);
  const badQuery = await buildJson(root, `${url}?depth=1`, []);
  assert.equal(badQuery.code, 2);
  assert.match(badQuery.stderr, /unknown git query key depth/);

  const other = join(d, 'other');
  assertOk(await buildJson(root, `${url}#:docker`, ['-f', 'other.Dockerfile', '-o', `type=local,dest=${other}`]));
  assert.deepEqual(Object.keys(await readTree(other)), ['other.txt']);

  // A repository as a named context, beside a local one.
  const local = join(d, 'local');
  await mkdir(local);
  await writeFile(join(local, 'Dockerfile'), 'FROM scratch\nCOPY --from=docs file.txt /named.txt\n');
  const named = join(d, 'named');
  assertOk(await buildJson(root, local, ['--build-context', `docs=${url}#release:docker`, '-o', `type=local,dest=${named}`]));
  assert.deepEqual(Object.keys(await readTree(named)), ['named.txt']);

  // Errors name the context: a Dockerfile the ref lacks, a ref the remote lacks.
  const noFile = await buildJson(root, `${url}#release`, ['-o', `type=local,dest=${join(d, 'x1')}`]);
  assert.equal(noFile.code, 1);
  assert.match(noFile.stderr, new RegExp(`context ${url}#release: no Dockerfile at commit ${git(repoDir, 'rev-parse', 'HEAD')}`));
  const escape = await buildJson(root, `${url}#release:host-etc`, ['-o', `type=local,dest=${join(d, 'x-etc')}`]);
  assert.equal(escape.code, 1);
  assert.match(escape.stderr, /context .*#release:host-etc: host-etc is outside the repository/);
  const noRef = await buildJson(root, `${url}#nope`, ['-o', `type=local,dest=${join(d, 'x2')}`]);
  assert.notEqual(noRef.code, 0);
  assert.match(noRef.stderr, /no branch or tag named "nope"/);

  // By URL: a gzip tar with its Dockerfile inside, or a Dockerfile alone (an empty context).
  const tarSrc = join(d, 'tar-src');
  await mkdir(tarSrc);
  await writeFile(join(tarSrc, 'Dockerfile'), 'FROM scratch\nCOPY in.txt /from-tar.txt\n');
  await writeFile(join(tarSrc, 'in.txt'), 'in the tar\n');
  const tgz = execFileSync('tar', ['-czf', '-', '-C', tarSrc, '.']);
  const server = createServer((req, res) => {
    if (req.url === '/ctx.tar.gz') res.end(tgz);
    else if (req.url === '/Dockerfile') res.end('FROM scratch\nCOPY <<EOF /alone.txt\nalone\nEOF\n');
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const byTar = join(d, 'by-tar');
    assertOk(await buildJson(root, `${base}/ctx.tar.gz`, ['-o', `type=local,dest=${byTar}`]));
    assert.equal(await readFile(join(byTar, 'from-tar.txt'), 'utf8'), 'in the tar\n');
    const alone = join(d, 'alone');
    assertOk(await buildJson(root, `${base}/Dockerfile`, ['-o', `type=local,dest=${alone}`]));
    assert.equal(await readFile(join(alone, 'alone.txt'), 'utf8'), 'alone\n');
    const missing = await buildJson(root, `${base}/none.tar`, ['-o', `type=local,dest=${join(d, 'x3')}`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /context http:\/\/127\.0\.0\.1:\d+\/none\.tar: download failed: HTTP 404/);
  } finally {
    server.close();
  }
  // The fetched contexts are gone from the store's tmp/.
  assert.deepEqual((await readdir(join(root, 'tmp'))).filter((n) => /context/.test(n)), []);
});
