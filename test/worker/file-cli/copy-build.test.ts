// COPY/ADD through the real CLI: `kiln build` of testdata/copy/basic, the final filesystem
// compared entry by entry; reproducible digests across fresh stores and mtimes; cache hits that
// ignore mtimes and misses exactly where a file changed; errors that name the line and source.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, link, mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { testdataDir } from '../../helpers/paths.js';
import { tempDir } from '../../helpers/tmp.js';
import { sha256 } from '../../../src/util/digest.js';
import { listTree, F, D, type Listed } from '../file/helpers.js';
import { goSemanticsArchive } from '../../helpers/tar-blocks.js';

/** A private copy of testdata/copy/basic plus the parts git cannot hold. */
async function basicContext(): Promise<string> {
  const dir = join(await tempDir('kiln-copyctx-'), 'ctx');
  execFileSync('cp', ['-a', join(testdataDir, 'copy', 'basic'), dir]);
  const extra = join(dir, 'extra');
  await mkdir(join(extra, 'empty'), { recursive: true });
  await mkdir(join(extra, 'sticky'));
  await chmod(join(extra, 'sticky'), 0o1777);
  await writeFile(join(extra, 'suid'), 'suid');
  await chmod(join(extra, 'suid'), 0o4755);
  await writeFile(join(extra, 'h1'), 'linked');
  await link(join(extra, 'h1'), join(extra, 'h2'));
  await writeFile(join(extra, 'ignored-by-dockerignore'), 'x');
  const payload = join(dir, '..', 'payload');
  await mkdir(join(payload, 'pkg'), { recursive: true });
  await writeFile(join(payload, 'pkg', 'data.txt'), 'from the archive');
  // Fixed entry times and no gzip timestamp: two contexts made a second apart must hold the same
  // archive bytes (ADD keeps the archive's mtimes), or the reproducibility test below is flaky.
  execFileSync('sh', ['-c', 'tar --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$1" pkg | gzip -n > "$2"', 'sh', payload, join(extra, 'payload.tgz')]);
  return dir;
}

async function build(ctx: string, args: string[], env: Record<string, string> = {}) {
  return runKiln(['build', '--progress', 'plain', ...args, ctx], { env: { SOURCE_DATE_EPOCH: undefined, ...env } });
}

test('kiln build: every COPY/ADD case lands exactly as expected', async () => {
  const ctx = await basicContext();
  const work = await tempDir('kiln-copyout-');
  const out = join(work, 'rootfs');
  const r = await build(ctx, ['--root', join(work, 'store'), '-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  const tree = await listTree(out);
  const payloadTgz = tree['extra/payload.tgz'];
  assert.ok(payloadTgz);
  delete tree['extra/payload.tgz'];
  const expected: Record<string, Listed> = {
    app: D(),
    'app/a.txt': F('A\n'),
    'app/heredoc.txt': F('hello from a heredoc\n'),
    'app/src': D(),
    'app/src/app.js': F('console.log("app")\n'),
    'app/src/deep': D(),
    'app/src/deep/c.txt': F('deep\n'),
    'app/src/lib': D(),
    'app/src/lib/util.js': F('export const util = 1\n'),
    'app/sub': D(),
    'app/sub/a.txt': F('A\n'),
    'app/sub/b.txt': F('B\n'),
    docs: D(),
    'docs/one.md': F('# one\n'),
    'docs/two.md': F('# two\n'),
    etc: D(),
    'etc/group': F('root:x:0:\napp:x:1000:\nstaff:x:50:app\n'),
    'etc/passwd': F('root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n'),
    extra: D(),
    'extra/empty': D(),
    'extra/h1': F('linked'),
    'extra/h2': F('linked'),
    'extra/sticky': D('1777'),
    'extra/suid': F('suid', '4755'),
    'followed.txt': F('A\n'),
    // The destination folder is made like a parent (0755, root) even though the builder's
    // /opt is owned by app:staff; what is inside keeps its owners.
    'from-builder': D(),
    'from-builder/lib': D(),
    'from-builder/lib/util.js': F('export const util = 1\n'),
    'from-builder/tool.sh': F('#!/bin/sh\necho tool\n', '0755', '1000:50'),
    linked: D(),
    'linked/a.txt': F('A\n'),
    logs: D(),
    'logs/keep.txt': F('keep\n'),
    modes: D('0755'),
    'modes/util.js': F('export const util = 1\n', '0644'),
    'owned.txt': F('B\n', '0600', '1000:50'),
    parents: D(),
    'parents/deep': D(),
    'parents/deep/c.txt': F('deep\n'),
    unpacked: D(),
    'unpacked/pkg': D(),
    'unpacked/pkg/data.txt': F('from the archive'),
  };
  assert.deepEqual(tree, expected);
  assert.equal(payloadTgz.type, 'file');
  const ino = await listTree(join(out, 'extra'), true);
  assert.equal(ino['h1']!.ino, ino['h2']!.ino, 'hard links stay hard links');
});

test('kiln build: same contents, different mtimes, two fresh stores: one image digest', async () => {
  const a = await basicContext();
  const b = await basicContext();
  execFileSync('find', [b, '-exec', 'touch', '-h', '-d', '2001-02-03 04:05:06', '{}', '+']);
  const work = await tempDir('kiln-repro-');
  const digests: string[] = [];
  for (const [i, ctx] of [a, b].entries()) {
    const iid = join(work, `iid${i}`);
    const r = await build(ctx, ['--root', join(work, `store${i}`), '--iidfile', iid, '-t', `repro:${i}`]);
    assert.equal(r.code, 0, r.stderr);
    digests.push((await readFile(iid, 'utf8')).trim());
  }
  assert.match(digests[0]!, /^sha256:[0-9a-f]{64}$/);
  assert.equal(digests[0], digests[1]);
  // SOURCE_DATE_EPOCH gives other (but again reproducible) bytes.
  const iid = join(work, 'iid-epoch');
  const r = await build(a, ['--root', join(work, 'store0'), '--iidfile', iid, '-t', 'repro:epoch'], { SOURCE_DATE_EPOCH: '1700000000' });
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual((await readFile(iid, 'utf8')).trim(), digests[0]);
});

function stepLines(output: string): Map<string, string> {
  // `#N [stage k/n] INSTRUCTION` then `#N CACHED` or `#N DONE`.
  const names = new Map<string, string>();
  const state = new Map<string, string>();
  for (const line of output.split('\n')) {
    let m = /^#(\d+) \[[^\]]*\] (.*)$/.exec(line);
    if (m) names.set(m[1]!, m[2]!);
    m = /^#(\d+) (CACHED|DONE)/.exec(line);
    if (m && names.has(m[1]!)) state.set(names.get(m[1]!)!, m[2]!);
  }
  return state;
}

test('kiln build: mtime-only changes hit the cache; a content change reruns from that COPY on', async () => {
  const ctx = await basicContext();
  const store = join(await tempDir('kiln-cache-'), 'store');
  const first = await build(ctx, ['--root', store, '-t', 'c:1']);
  assert.equal(first.code, 0, first.stderr);
  await utimes(join(ctx, 'src', 'app.js'), 5, 5);
  await utimes(join(ctx, 'a.txt'), 5, 5);
  const again = await build(ctx, ['--root', store, '-t', 'c:1']);
  assert.equal(again.code, 0, again.stderr);
  const s1 = stepLines(again.stderr + again.stdout);
  assert.ok(s1.size > 10, again.stderr);
  for (const [name, st] of s1) assert.equal(st, 'CACHED', `${name} should be cached after an mtime-only change`);

  await writeFile(join(ctx, 'src', 'app.js'), 'console.log("changed")\n');
  const changed = await build(ctx, ['--root', store, '-t', 'c:1']);
  assert.equal(changed.code, 0, changed.stderr);
  const s2 = stepLines(changed.stderr + changed.stdout);
  assert.equal(s2.get('COPY a.txt .'), 'CACHED');
  assert.equal(s2.get('COPY a.txt b.txt sub/'), 'CACHED');
  assert.equal(s2.get('COPY src/ ./src/'), 'DONE');
  assert.equal(s2.get('COPY src/lib/ /opt/lib/'), 'CACHED', 'the builder stage reads only src/lib');
});

test('kiln build: a missing source fails naming the Dockerfile line and the source', async () => {
  const ctx = await tempDir('kiln-missing-');
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY present.txt /\nCOPY absent.txt /x\n');
  await writeFile(join(ctx, 'present.txt'), 'p');
  const r = await build(ctx, ['--root', join(ctx, '.store')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /source "absent\.txt" not found in the build context/);
});

test('kiln build: a wildcard with no match copies nothing, as in BuildKit (COPY, ADD, COPY --from, beside a file)', async () => {
  const ctx = await tempDir('kiln-nomatch-');
  await writeFile(join(ctx, 'a.txt'), 'A');
  await writeFile(join(ctx, 'Dockerfile'), [
    'FROM scratch AS s',
    'COPY a.txt /',
    'FROM scratch',
    'COPY *.nothing /d1/',
    'ADD *.nothing /d2/',
    'COPY --from=s /nothing* /d3/',
    'COPY a.txt *.md /d4/',
    '',
  ].join('\n'));
  const out = join(ctx, '.out');
  const r = await build(ctx, ['--root', join(ctx, '.store'), '-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await readdir(out)).sort(), ['d4']);
  assert.deepEqual(await readdir(join(out, 'd4')), ['a.txt']);
});

test('kiln build: a source outside the context and a wildcard matching a link to nothing are errors', async () => {
  const ctx = await tempDir('kiln-escape-');
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY ../../etc/passwd /p\n');
  const r = await build(ctx, ['--root', join(ctx, '.store')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /outside the build context/);
  await mkdir(join(ctx, 'd'));
  await writeFile(join(ctx, 'd', 'kept.txt'), 'k');
  await symlink('/etc/passwd', join(ctx, 'd', 'abs'));
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY d/* /d/\n');
  const l = await build(ctx, ['--root', join(ctx, '.store')]);
  assert.equal(l.code, 1, l.stderr);
  assert.match(l.stderr, /Dockerfile:2:1: .*source pattern "d\/\*" matched "d\/abs", a symbolic link to "\/etc\/passwd", which is not found in the build context/);
});

test('kiln build: ADD of an http URL with --checksum', async () => {
  const body = 'downloaded over http\n';
  const server = createServer((req, res) => {
    if (req.url === '/dl/file.txt') res.writeHead(200).end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const ctx = await tempDir('kiln-addurl-');
    const out = join(ctx, 'out');
    await writeFile(
      join(ctx, 'Dockerfile'),
      `FROM scratch\nADD --checksum=${sha256(body)} http://127.0.0.1:${port}/dl/file.txt /downloads/\n`,
    );
    const r = await build(ctx, ['--root', join(ctx, '.store'), '-o', `type=local,dest=${out}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await listTree(out), { downloads: D(), 'downloads/file.txt': F(body, '0600') });
    await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nADD --checksum=${sha256('other')} http://127.0.0.1:${port}/dl/file.txt /d\n`);
    const bad = await build(ctx, ['--root', join(ctx, '.store2')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /checksum mismatch/);
  } finally {
    server.close();
  }
});


test('kiln build: ADD of a URL without --checksum asks "changed since?" and reruns only when it did', async () => {
  let body = 'version 1\n';
  const statuses: number[] = [];
  const server = createServer((req, res) => {
    const etag = `"${sha256(body).slice(7, 23)}"`;
    if (req.headers['if-none-match'] === etag) {
      statuses.push(304);
      res.writeHead(304, { etag }).end();
      return;
    }
    statuses.push(200);
    res.writeHead(200, { etag }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const ctx = await tempDir('kiln-addetag-');
    await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nADD http://127.0.0.1:${port}/v.txt /v.txt\n`);
    const store = join(ctx, '.store');
    const step = 'ADD http://127.0.0.1:' + port + '/v.txt /v.txt';
    const b1 = await build(ctx, ['--root', store]);
    assert.equal(b1.code, 0, b1.stderr);
    assert.deepEqual(statuses, [200]);
    const b2 = await build(ctx, ['--root', store]);
    assert.equal(b2.code, 0, b2.stderr);
    assert.deepEqual(statuses, [200, 304]);
    assert.equal(stepLines(b2.stderr + b2.stdout).get(step), 'CACHED');
    body = 'version 2\n';
    const out = join(ctx, 'out');
    const b3 = await build(ctx, ['--root', store, '-o', `type=local,dest=${out}`]);
    assert.equal(b3.code, 0, b3.stderr);
    assert.deepEqual(statuses, [200, 304, 200]);
    assert.equal(stepLines(b3.stderr + b3.stdout).get(step), 'DONE');
    assert.equal(await readFile(join(out, 'v.txt'), 'utf8'), 'version 2\n');
  } finally {
    server.close();
  }
});

test('kiln build: COPY --from an image in the local store', async () => {
  const work = await tempDir('kiln-fromimg-');
  const store = join(work, 'store');
  const src = join(work, 'src');
  await mkdir(join(src, 'data'), { recursive: true });
  await writeFile(join(src, 'data', 'f.txt'), 'from an image');
  await writeFile(join(src, 'Dockerfile'), 'FROM scratch\nCOPY --chown=7:8 data /data/\n');
  const made = await build(src, ['--root', store, '-t', 'copysrc:1']);
  assert.equal(made.code, 0, made.stderr);
  const use = join(work, 'use');
  await mkdir(use);
  await writeFile(join(use, 'Dockerfile'), 'FROM scratch\nCOPY --from=copysrc:1 /data/f.txt /got/\n');
  const out = join(work, 'out');
  const r = await build(use, ['--root', store, '-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await listTree(out), { got: D(), 'got/f.txt': F('from an image', '0644', '7:8') });
});

test('kiln build: ADD of an evil archive fails and writes nothing outside', async () => {
  const work = await tempDir('kiln-evilcli-');
  const outside = await tempDir('kiln-evil-outside-');
  const ctx = join(work, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'Dockerfile'), 'placeholder');
  // A tar whose entry climbs out with `..`.
  execFileSync('tar', ['-cf', join(ctx, 'evil.tar'), '--absolute-names', '--transform', `s,^,../../../../../../../../..${outside}/,`, '-C', ctx, 'Dockerfile']);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nADD evil.tar /x/\n');
  const r = await build(ctx, ['--root', join(work, 'store'), '-t', 'evil:1']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /refusing to extract/);
  assert.deepEqual(await readdir(outside), []);
  const images = await runKiln(['images', '--root', join(work, 'store')]);
  assert.doesNotMatch(images.stdout, /evil/);
});

test('kiln build: ADD extracts absolute names under the destination and gives a folder the archive names its mode, as docker build does', async () => {
  const work = await tempDir('kiln-abscli-');
  const ctx = join(work, 'ctx');
  await mkdir(join(ctx, 'etc'), { recursive: true });
  await mkdir(join(ctx, 'empty'));
  await writeFile(join(ctx, 'etc', 'motd'), 'from an absolute name\n');
  await chmod(join(ctx, 'etc'), 0o700);
  // -P keeps the leading `/` that GNU tar strips by default.
  execFileSync('tar', ['-cPf', join(ctx, 'abs.tar'), '--transform', `s,^${ctx},,`, join(ctx, 'etc', 'motd')]);
  assert.match(execFileSync('tar', ['-tPf', join(ctx, 'abs.tar')], { encoding: 'utf8' }), /^\/etc\/motd$/m);
  execFileSync('tar', ['-cf', join(ctx, 'named.tar'), '-C', ctx, 'etc']);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nADD abs.tar /x/\nCOPY --chmod=1777 empty/ /y/etc/\nADD named.tar /y/\n');
  const out = join(work, 'rootfs');
  const r = await build(ctx, ['--root', join(work, 'store'), '-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(join(out, 'x', 'etc', 'motd'), 'utf8'), 'from an absolute name\n');
  const tree = await listTree(join(out, 'y'));
  assert.equal(tree['etc']!.mode, '0700');
  assert.equal(tree['etc/motd']!.content, 'from an absolute name\n');
});

test('kiln build: ADD of an archive onto a merged-/usr image writes lib/x through the lib link, carries out its whiteouts, and a file of the archive replaces a folder, as docker build does', async () => {
  const work = await tempDir('kiln-mergedusr-');
  const ctx = join(work, 'ctx');
  await mkdir(join(ctx, 'root', 'usr', 'lib'), { recursive: true });
  await writeFile(join(ctx, 'root', 'usr', 'lib', 'keep'), 'k');
  await symlink('usr/lib', join(ctx, 'root', 'lib'));
  await mkdir(join(work, 'payload', 'lib'), { recursive: true });
  await writeFile(join(work, 'payload', 'lib', 'x'), 'x');
  // A whiteout, as an image layer's tar holds them: it deletes usr/lib/drop (through the link).
  await writeFile(join(ctx, 'root', 'usr', 'lib', 'drop'), 'd');
  await writeFile(join(work, 'payload', 'lib', '.wh.drop'), '');
  execFileSync('tar', ['-cf', join(ctx, 'implied.tar'), '-C', join(work, 'payload'), 'lib/x', 'lib/.wh.drop']);
  // And a file in the archive where the image has a folder: the file takes its place.
  await mkdir(join(ctx, 'root', 'data', 'old'), { recursive: true });
  await writeFile(join(work, 'payload', 'data'), 'a file now');
  execFileSync('tar', ['-cf', join(ctx, 'over.tar'), '-C', join(work, 'payload'), 'data']);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY root/ /\nADD implied.tar /\nADD over.tar /\n');
  const out = join(work, 'rootfs');
  const r = await build(ctx, ['--root', join(work, 'store'), '-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  const tree = await listTree(out);
  assert.equal(tree['lib']!.type, 'symlink');
  assert.equal(tree['usr/lib/x']!.content, 'x');
  assert.equal(tree['usr/lib/keep']!.content, 'k');
  assert.equal(tree['data']!.content, 'a file now');
  assert.equal(tree['data/old'], undefined);
  assert.deepEqual(Object.keys(tree).filter((p) => p.startsWith('usr/lib/')).sort(), ['usr/lib/keep', 'usr/lib/x']);
});

test('kiln build: ADD reads an archive up to its end blocks, as docker build does: a second archive appended is ignored; a header after a single zero block fails the step, naming its line', async () => {
  const work = await tempDir('kiln-tarendcli-');
  const ctx = join(work, 'ctx');
  await mkdir(join(work, 'a'), { recursive: true });
  await mkdir(join(work, 'b'));
  await mkdir(ctx);
  await writeFile(join(work, 'a', 'first'), 'first');
  await writeFile(join(work, 'b', 'second'), 'second');
  execFileSync('tar', ['-cf', join(work, 'a.tar'), '-C', join(work, 'a'), 'first']);
  execFileSync('tar', ['-cf', join(work, 'b.tar'), '-C', join(work, 'b'), 'second']);
  const a = await readFile(join(work, 'a.tar'));
  const b = await readFile(join(work, 'b.tar'));
  await writeFile(join(ctx, 'appended.tar'), Buffer.concat([a, b]));
  // first's header and one body block, one zero block, then b's entries.
  await writeFile(join(ctx, 'one-zero.tar'), Buffer.concat([a.subarray(0, 1024), Buffer.alloc(512), b]));
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nADD appended.tar /x/\n');
  const out = join(work, 'rootfs');
  const r = await build(ctx, ['--root', join(work, 'store'), '-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readdir(join(out, 'x')), ['first']);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nADD appended.tar /x/\nADD one-zero.tar /y/\n');
  const bad = await build(ctx, ['--root', join(work, 'store'), '-t', 'onezero:1']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Dockerfile:3:1: .*ADD one-zero\.tar \/y\/: .*one-zero\.tar.*follows a single zero block/);
  const images = await runKiln(['images', '--root', join(work, 'store')]);
  assert.doesNotMatch(images.stdout, /onezero/);
});

test('kiln build: ADD reads an archive as docker build\'s Go reader does: global PAX headers ignored, a symlink\'s counted body absent, the GNU long name over the PAX path, a NUL-typed name ending in / a folder', async () => {
  const work = await tempDir('kiln-goreadcli-');
  const ctx = join(work, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'go.tar'), goSemanticsArchive());
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nADD go.tar /g/\n');
  const out = join(work, 'rootfs');
  const r = await build(ctx, ['--root', join(work, 'store'), '-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  const tree = await listTree(out);
  assert.deepEqual(Object.keys(tree).sort(), ['g', 'g/from-pax', 'g/gnu-wins', 'g/last', 'g/link', 'g/olddir']);
  assert.equal(tree['g/from-pax']!.content, 'pax file');
  assert.equal(tree['g/link']!.type, 'symlink');
  assert.equal(readlinkSync(join(out, 'g/link')), 'from-pax');
  assert.equal(tree['g/gnu-wins']!.content, 'named by GNU');
  assert.equal(tree['g/olddir']!.type, 'dir');
});

test('kiln build: ADD --chmod of an archive keeps the archive\'s modes and makes the destination 0755, as BuildKit unpacks', async () => {
  const work = await tempDir('kiln-addchmodcli-');
  const ctx = join(work, 'ctx');
  await mkdir(join(work, 'payload', 'd'), { recursive: true });
  await mkdir(ctx);
  await writeFile(join(work, 'payload', 'd', 'a'), 'a');
  await chmod(join(work, 'payload', 'd', 'a'), 0o640);
  execFileSync('tar', ['-cf', join(ctx, 'a.tar'), '-C', join(work, 'payload'), 'd']);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nADD --chmod=0700 a.tar /x/\n');
  const out = join(work, 'rootfs');
  const r = await build(ctx, ['--root', join(work, 'store'), '-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  const tree = await listTree(out);
  assert.deepEqual([tree['x']!.mode, tree['x/d']!.mode, tree['x/d/a']!.mode], ['0755', '0755', '0640']);
});

test('kiln build: COPY --chown of names the image lacks builds as with BuildKit (root, the user\'s group) and says so in the step\'s output', async () => {
  const ctx = await tempDir('kiln-chown-missing-');
  await writeFile(join(ctx, 'a.txt'), 'A');
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY --chown=root:root a.txt /r.txt\nCOPY --chown=ghost:7 a.txt /g.txt\n');
  const out = join(ctx, '.out');
  const r = await build(ctx, ['--root', join(ctx, '.store'), '--progress', 'plain', '-o', `type=local,dest=${out}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: --chown: no user "root" in the image's \/etc\/passwd; owner 0 \(root\), as BuildKit does/);
  assert.match(r.stderr, /warning: --chown: no user "ghost" in the image's \/etc\/passwd/);
  for (const [f, ids] of [['r.txt', [0, 0]], ['g.txt', [0, 7]]] as const) {
    const st = await stat(join(out, f));
    assert.deepEqual([st.uid, st.gid], ids, f);
  }
});
