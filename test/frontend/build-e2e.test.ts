// The frontend through the real CLI: what `kiln build` makes of multi-stage Dockerfiles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { runKiln, runProgram } from '../helpers/kiln.js';
import { kilnBin } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { makeBusyboxRootfs, BUSYBOX_DOCKERFILE } from '../helpers/busybox.js';

async function files(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(dir, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory()) out.push(...(await files(dir, p)));
  }
  return out;
}

/** A fresh folder holding ctx/ (its Dockerfile and files) and, beside it, room for a store and outputs. */
async function project(dockerfile: string, files: Record<string, string> = {}): Promise<{ d: string; ctx: string; root: string }> {
  const d = await tempDir();
  const ctx = join(d, 'ctx');
  await mkdir(ctx);
  for (const [name, content] of Object.entries({ ...files, Dockerfile: dockerfile })) await writeFile(join(ctx, name), content);
  return { d, ctx, root: join(d, 'store') };
}

test('multi-stage build: --target skips unneeded stages, build args, heredoc files, ignore file', async () => {
  const d = await tempDir();
  const ctx = join(d, 'ctx');
  await mkdir(join(ctx, 'src'), { recursive: true });
  await writeFile(join(ctx, 'src', 'main.txt'), 'main\n');
  await writeFile(join(ctx, 'notes.log'), 'ignored\n');
  await writeFile(join(ctx, 'Dockerfile.dockerignore'), '*.log\nDockerfile*\n');
  await writeFile(join(ctx, 'Dockerfile'), [
    'ARG FLAVOR=plain',
    'FROM scratch AS build',
    'ARG FLAVOR',
    'COPY src/ /src/',
    'COPY <<EOF /src/flavor.txt',
    'flavor=${FLAVOR}',
    'EOF',
    'FROM does-not-exist.invalid/never:pulled AS unused',
    'FROM scratch AS final',
    'COPY --from=build /src /app',
    'COPY --from=0 /src/main.txt /app/again.txt',
    'COPY . /ctx/',
  ].join('\n') + '\n');
  const out = join(d, 'out');
  const r = await runKiln(['build', '--root', join(d, 'store'), '--build-arg', 'FLAVOR=spicy', '--target', 'final', '-o', `type=local,dest=${out}`, '--progress', 'plain', ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await files(out), ['app', 'app/again.txt', 'app/flavor.txt', 'app/main.txt', 'ctx', 'ctx/src', 'ctx/src/main.txt']);
  assert.equal(await readFile(join(out, 'app', 'flavor.txt'), 'utf8'), 'flavor=spicy\n');

  const bad = await runKiln(['build', '--root', join(d, 'store'), '--target', 'nope', '-o', `type=local,dest=${join(d, 'o2')}`, ctx]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /target stage "nope" could not be found/);
});

test('RUN conversion end to end: shell form, heredoc script, ARG/ENV in the step, WORKDIR; ARG and ENV of one name, ARGs of a base stage, proxies', async () => {
  const d = await tempDir();
  const store = join(d, 'store');
  const rootfs = join(d, 'rootfs');
  await makeBusyboxRootfs(rootfs);
  await writeFile(join(rootfs, 'Dockerfile'), BUSYBOX_DOCKERFILE);
  const base = await runKiln(['build', '--root', store, '-t', 'kiln-frontend-busybox', '--progress', 'plain', rootfs]);
  assert.equal(base.code, 0, base.stderr);

  const ctx = join(d, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'Dockerfile'), [
    'FROM kiln-frontend-busybox',
    'ARG GREETING=hello',
    'ENV WHO=world',
    'WORKDIR /work/sub',
    'RUN echo "$GREETING $WHO from $(pwd)" > /work/out.txt',
    'RUN <<EOF',
    '#!/bin/sh',
    'echo "script $GREETING" > /work/script.txt',
    'EOF',
    'FROM scratch',
    'COPY --from=0 /work/ /',
  ].join('\n') + '\n');
  const out = join(d, 'out');
  const r = await runKiln(['build', '--root', store, '-o', `type=local,dest=${out}`, '--progress', 'plain', ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(join(out, 'out.txt'), 'utf8'), 'hello world from /work/sub\n');
  assert.equal(await readFile(join(out, 'script.txt'), 'utf8'), 'script hello\n');

  // ARG and ENV of one name, and a stage built FROM another, as BuildKit's RUN sees them: the
  // later of the two wins; the new stage carries on the base stage's ARG values, with the image's
  // ENV set again over them; a proxy build arg reaches RUN in both cases without an ARG.
  await writeFile(join(ctx, 'Dockerfile'), [
    'FROM kiln-frontend-busybox AS base',
    'ENV E=env A=1',
    'ARG E=arg',
    'ARG V=1',
    'ARG A=2',
    'RUN mkdir /o && echo "E=$E V=$V A=$A" > /o/base.txt',
    'FROM base AS child',
    'RUN echo "E=$E V=$V A=$A proxy=$http_proxy,$HTTP_PROXY" > /o/child.txt',
    'ENV V=env',
    'ARG V',
    'RUN echo "V=$V" >> /o/child.txt',
    'ARG V=arg',
    'RUN echo "V=$V" >> /o/child.txt',
    'FROM scratch',
    'COPY --from=child /o/ /',
  ].join('\n') + '\n');
  const out2 = join(d, 'out2');
  const r2 = await runKiln(['build', '--root', store, '--build-arg', 'http_proxy=http://proxy.invalid:3128', '-o', `type=local,dest=${out2}`, '--progress', 'plain', ctx]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(await readFile(join(out2, 'base.txt'), 'utf8'), 'E=arg V=1 A=2\n');
  assert.equal(await readFile(join(out2, 'child.txt'), 'utf8'), 'E=env V=1 A=1 proxy=http://proxy.invalid:3128,http://proxy.invalid:3128\nV=env\nV=arg\n');
});

test('-f - reads the Dockerfile from standard input (errors name <stdin>); the context is still the folder', async () => {
  // The folder's own Dockerfile is not the one used.
  const { d, ctx, root } = await project('FROM scratch\nCOPY missing.txt /\n', { 'a.txt': 'from the context\n' });
  const out = join(d, 'out');
  const r = await runKiln(['build', '--root', root, '-f', '-', '-o', `type=local,dest=${out}`, ctx], { input: 'FROM scratch\nCOPY a.txt /copied.txt\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(join(out, 'copied.txt'), 'utf8'), 'from the context\n');

  const bad = await runKiln(['build', '--root', root, '-f', '-', ctx], { input: 'FROM scratch\nBOGUS x\n' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /<stdin>:2:1: unknown instruction: BOGUS/);
});

test('a stage FROM stages of config instructions only keeps their history, as BuildKit does', async () => {
  const { ctx, root } = await project([
    'FROM scratch AS a',
    'COPY f /f',
    'FROM a AS b',
    'CMD ["b"]',
    'FROM b AS c',
    'USER 1000',
    'FROM c',
    'ENTRYPOINT ["x"]',
    '',
  ].join('\n'), { f: 'f' });
  const r = await runKiln(['build', '--root', root, '-t', 'chained', ctx]);
  assert.equal(r.code, 0, r.stderr);
  const inspect = await runKiln(['inspect', '--root', root, 'chained']);
  assert.equal(inspect.code, 0, inspect.stderr);
  const config = JSON.parse(inspect.stdout) as { history: Array<{ created_by: string; empty_layer?: boolean }> };
  assert.deepEqual(config.history.map((h) => [h.created_by, h.empty_layer ?? false]), [
    ['COPY f /f # buildkit', false],
    ['CMD ["b"]', true],
    ['USER 1000', true],
    ['ENTRYPOINT ["x"]', true],
  ]);
});

test('COPY of several sources to a destination without a slash works as in BuildKit: into a folder, else one after another', async () => {
  const { d, ctx, root } = await project([
    'FROM scratch',
    'COPY a.txt b.txt /app/',
    // The folder exists: both go into it.
    'COPY a.txt b.txt /app',
    // A new name: the files land on it one after another, the last one staying.
    'COPY a.txt b.txt /last',
    'COPY d? /merged',
    '',
  ].join('\n'), { 'a.txt': 'A', 'b.txt': 'B' });
  await mkdir(join(ctx, 'd1'));
  await mkdir(join(ctx, 'd2'));
  await writeFile(join(ctx, 'd1', 'one'), '1');
  await writeFile(join(ctx, 'd2', 'two'), '2');
  const out = join(d, 'out');
  const r = await runKiln(['build', '--root', root, '-o', `type=local,dest=${out}`, ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await files(out), ['app', 'app/a.txt', 'app/b.txt', 'last', 'merged', 'merged/one', 'merged/two']);
  assert.equal(await readFile(join(out, 'last'), 'utf8'), 'B');

  // A folder after a file that made the destination cannot go there.
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a.txt d1 /x\n');
  const bad = await runKiln(['build', '--root', root, '-o', `type=local,dest=${join(d, 'o2')}`, ctx]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Dockerfile:2:1: .*COPY a\.txt d1 \/x: cannot copy to non-directory: \/x is a file/);
});

test('ADD of a sparse archive (tar --sparse --format=posix) gives the whole file; a GNU-format sparse entry fails the step, as in docker build', async () => {
  const { d, ctx, root } = await project('FROM scratch\nADD sparse.tar /x/\n');
  const src = join(d, 'src');
  await mkdir(src);
  execFileSync('sh', ['-c', 'printf data | dd of=holey bs=1 seek=700000 conv=notrunc 2>/dev/null && truncate -s 1M holey'], { cwd: src });
  execFileSync('tar', ['--sparse', '--format=posix', '-cf', join(ctx, 'sparse.tar'), '-C', src, 'holey']);
  execFileSync('tar', ['--sparse', '--format=gnu', '-cf', join(ctx, 'gnu.tar'), '-C', src, 'holey']);
  const out = join(d, 'out');
  const r = await runKiln(['build', '--root', root, '-o', `type=local,dest=${out}`, ctx]);
  assert.equal(r.code, 0, r.stderr);
  const got = await readFile(join(out, 'x', 'holey'));
  assert.equal(got.length, 1 << 20);
  assert.equal(got.subarray(700_000, 700_004).toString(), 'data');
  assert.equal(got.subarray(0, 700_000).some((b) => b !== 0), false);

  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nADD gnu.tar /x/\n');
  const bad = await runKiln(['build', '--root', root, '-o', `type=local,dest=${join(d, 'o2')}`, ctx]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Dockerfile:2:1: .*ADD gnu\.tar \/x\/: .*refusing to extract "holey": an entry of a type that is not extracted/);
});

test('--label sets labels on the image, over the Dockerfile LABEL of the same key', async () => {
  const { ctx, root } = await project('FROM scratch\nLABEL a=dockerfile b=kept\n');
  const r = await runKiln(['build', '--root', root, '--label', 'a=flag', '--label', 'org.opencontainers.image.revision=abc123', '--label', 'empty', '-t', 'labelled', ctx]);
  assert.equal(r.code, 0, r.stderr);
  const inspect = await runKiln(['inspect', '--root', root, 'labelled']);
  assert.equal(inspect.code, 0, inspect.stderr);
  const labels = (JSON.parse(inspect.stdout) as { config: { Labels: Record<string, string> } }).config.Labels;
  assert.deepEqual(labels, { a: 'flag', b: 'kept', 'org.opencontainers.image.revision': 'abc123', empty: '' });

  const bad = await runKiln(['build', '--root', root, '--label', '=x', ctx]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--label: expected KEY=VALUE, got "=x"/);
});

test('docker build flags with nothing to do are accepted (with buildx\'s warnings); asking for an attestation is an error naming the flag', async () => {
  const { ctx, root } = await project('FROM scratch\nLABEL a=b\n');
  const ok = await runKiln(['build', '--root', root, '-q', '--provenance=false', '--sbom', 'false', '--attest', 'type=provenance,disabled=true',
    '--load', '--rm', '--force-rm=true', '-t', 'plain', ctx]);
  assert.equal(ok.code, 0, ok.stderr);
  const inspect = await runKiln(['inspect', '--root', root, 'plain']);
  assert.equal(inspect.code, 0, inspect.stderr);
  // Flags buildx (or docker build) accepts and ignores, with buildx's warnings for three of them.
  const ignored = await runKiln([
    'build', '--root', root, '--progress', 'plain', '--compress', '--isolation', 'default', '--security-opt', 'seccomp=unconfined', '--squash',
    '--disable-content-trust', '--builder', 'ci', ctx,
  ]);
  assert.equal(ignored.code, 0, ignored.stderr);
  assert.match(ignored.stderr, /WARNING: kiln has no builder instances: --builder is ignored\./);
  assert.match(ignored.stderr, /WARNING: isolation flag is deprecated with BuildKit\./);
  assert.match(ignored.stderr, /WARNING: security-opt flag is deprecated\. "RUN --security=insecure" should be used with BuildKit\./);
  assert.match(ignored.stderr, /WARNING: experimental flag squash is removed with BuildKit\./);
  for (const [flags, message] of [
    [['--provenance=true'], /--provenance: kiln writes no attestations; only --provenance=false is accepted, got "true"/],
    [['--sbom', 'generator=x'], /--sbom: kiln writes no attestations/],
    [['--attest', 'type=sbom'], /--attest: kiln writes no attestations; only type=sbom,disabled=true is accepted/],
    [['--attest', 'type=other,disabled=true'], /--attest: expected type=provenance or type=sbom/],
  ] as const) {
    const bad = await runKiln(['build', '--root', root, ...flags, ctx]);
    assert.equal(bad.code, 2, flags.join(' '));
    assert.match(bad.stderr, message);
  }
});

test('--build-arg BUILDKIT_DOCKERFILE_CHECK takes the place of the # check= directive, and BUILDKIT_SYNTAX of the syntax one, as in BuildKit', async () => {
  const { ctx, root } = await project('# check=skip=JSONArgsRecommended\nFROM scratch AS Base\nCMD run it\n');
  const directive = await runKiln(['build', '--root', root, '--progress', 'plain', ctx]);
  assert.equal(directive.code, 0, directive.stderr);
  assert.match(directive.stderr, /StageNameCasing/);
  assert.doesNotMatch(directive.stderr, /JSONArgsRecommended/);
  const skipped = await runKiln(['build', '--root', root, '--progress', 'plain', '--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=skip=StageNameCasing', ctx]);
  assert.equal(skipped.code, 0, skipped.stderr);
  assert.doesNotMatch(skipped.stderr, /StageNameCasing/);
  assert.match(skipped.stderr, /JSONArgsRecommended/, 'the directive\'s skip list is replaced, not merged');
  assert.doesNotMatch(skipped.stderr, /BUILDKIT_DOCKERFILE_CHECK/, 'a builder option, not an unused build arg');
  const failing = await runKiln(['build', '--root', root, '--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=error=true', ctx]);
  assert.equal(failing.code, 1);
  assert.match(failing.stderr, /lint violations \(# check=error=true\)/);
  const bad = await runKiln(['build', '--root', root, '--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=errors=true', ctx]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--build-arg BUILDKIT_DOCKERFILE_CHECK: invalid check directive "errors=true": unknown key "errors"/);
  // BUILDKIT_SYNTAX, another frontend option: a foreign frontend image is named in a warning.
  const foreign = await runKiln(['build', '--root', root, '--progress', 'plain', '--build-arg', 'BUILDKIT_SYNTAX=example.com/my/frontend:1', ctx]);
  assert.equal(foreign.code, 0, foreign.stderr);
  assert.match(foreign.stderr, /--build-arg BUILDKIT_SYNTAX names frontend image "example\.com\/my\/frontend:1": kiln ignores it/);
  const standard = await runKiln(['build', '--root', root, '--progress', 'plain', '--build-arg', 'BUILDKIT_SYNTAX=docker/dockerfile:1.7', ctx]);
  assert.equal(standard.code, 0, standard.stderr);
  assert.doesNotMatch(standard.stderr, /BUILDKIT_SYNTAX/);
});

test('--call targets lists the stages as buildx does, with the descriptions their comments give, and builds nothing', async () => {
  const { ctx, root } = await project([
    'ARG GO=1.22',
    '',
    '# base sets up the toolchain',
    'FROM golang:${GO} AS base',
    '',
    '# Build is not how the comment must start: the name as the stage is known, lowercase',
    '# build compiles the binary',
    'FROM base AS Build',
    '',
    'FROM scratch AS release-candidate',
    'COPY --from=build /x /x',
    '',
    '# a comment above an unnamed stage describes nothing',
    'FROM scratch',
    '',
  ].join('\n'));
  const r = await runKiln(['build', '--root', root, '--call', 'targets', '-t', 'listed', ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, [
    'TARGET            DESCRIPTION',
    'base              sets up the toolchain',
    'build             compiles the binary',
    'release-candidate ',
    '(default)         ',
    '',
  ].join('\n'));
  const images = await runKiln(['images', '--root', root]);
  assert.doesNotMatch(images.stdout, /listed/, 'nothing was built (golang:1.22 was never pulled)');
});

test('--check reports the build checks as buildx does, builds nothing, and exits 1 when there is a warning', async () => {
  const { ctx, root } = await project('FROM scratch AS Base\nCOPY . /\nCMD run it\n');
  const r = await runKiln(['build', '--root', root, '--check', '-t', 'checked', ctx]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, [
    'Check complete, 2 warnings have been found!',
    '',
    'WARNING: StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/',
    "Stage name 'Base' should be lowercase",
    'Dockerfile:1',
    '--------------------',
    '   1 | >>> FROM scratch AS Base',
    '   2 |     COPY . /',
    '   3 |     CMD run it',
    '--------------------',
    '',
    'WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/',
    'JSON arguments recommended for CMD to prevent unintended behavior related to OS signals',
    'Dockerfile:3',
    '--------------------',
    '   1 |     FROM scratch AS Base',
    '   2 |     COPY . /',
    '   3 | >>> CMD run it',
    '   4 |     ',
    '--------------------',
    '',
  ].join('\n'));
  const images = await runKiln(['images', '--root', root]);
  assert.doesNotMatch(images.stdout, /checked/, 'nothing was built');

  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch AS base\nCOPY . /\nCMD ["run", "it"]\n');
  const clean = await runKiln(['build', '--root', root, '--call', 'check', ctx]);
  assert.equal(clean.code, 0, clean.stderr);
  assert.equal(clean.stdout, 'Check complete, no warnings found.\n');
  // Without --target, every stage is checked, as buildx's check does; with one, what it needs.
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch AS unused\nENV X=$NOPE\nFROM scratch\nCMD ["run"]\n');
  const all = await runKiln(['build', '--root', root, '--check', ctx]);
  assert.equal(all.code, 1);
  assert.match(all.stdout, /WARNING: UndefinedVar - .*\nUsage of undefined variable '\$NOPE'\nDockerfile:2\n/);
  const targeted = await runKiln(['build', '--root', root, '--check', '--target', '1', ctx]);
  assert.equal(targeted.code, 0, targeted.stdout);
  const bad = await runKiln(['build', '--root', root, '--call', 'outline', ctx]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--call: expected build, check or targets, got "outline"/);
});

test('--platform with a list (a multi-platform build) is refused before anything runs', async () => {
  const { ctx, root } = await project('FROM scratch\nLABEL a=b\n');
  const r = await runKiln(['build', '--root', root, '--platform', 'linux/amd64,linux/arm64', ctx]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--platform: kiln builds one platform at a time, got "linux\/amd64,linux\/arm64"/);
});

test('a context of - reads standard input: a Dockerfile (empty context), or a tar or gzip tar context with its Dockerfile inside', async () => {
  const d = await tempDir();
  const root = join(d, 'store');
  const out = join(d, 'out');
  const text = await runKiln(['build', '--root', root, '-o', `type=local,dest=${out}`, '-'], { input: 'FROM scratch\nLABEL a=b\n' });
  assert.equal(text.code, 0, text.stderr);
  const copyFails = await runKiln(['build', '--root', root, '-'], { input: 'FROM scratch\nCOPY a.txt /\n' });
  assert.equal(copyFails.code, 1, 'the context is empty');

  const ctx = join(d, 'ctx');
  await mkdir(join(ctx, 'sub'), { recursive: true });
  await writeFile(join(ctx, 'sub', 'a.txt'), 'from the archive\n');
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY sub/a.txt /copied.txt\n');
  await writeFile(join(ctx, 'Other.Dockerfile'), 'FROM scratch\nCOPY sub/a.txt /other.txt\n');
  const tarball = execFileSync('tar', ['-C', ctx, '-cf', '-', '.']);
  const tarred = await runKiln(['build', '--root', root, '-o', `type=local,dest=${join(d, 'out-tar')}`, '-'], { input: tarball });
  assert.equal(tarred.code, 0, tarred.stderr);
  assert.equal(await readFile(join(d, 'out-tar', 'copied.txt'), 'utf8'), 'from the archive\n');
  const gz = await runKiln(['build', '--root', root, '-f', 'Other.Dockerfile', '-o', `type=local,dest=${join(d, 'out-gz')}`, '-'], { input: gzipSync(tarball) });
  assert.equal(gz.code, 0, gz.stderr);
  assert.deepEqual(await readdir(join(d, 'out-gz')), ['other.txt']);
  // A tar context is taken whole, as BuildKit takes one: its .dockerignore is not read.
  await writeFile(join(ctx, '.dockerignore'), 'sub\n');
  await writeFile(join(ctx, 'Whole.Dockerfile'), 'FROM scratch\nCOPY . /all/\n');
  const whole = await runKiln(['build', '--root', root, '-f', 'Whole.Dockerfile', '-o', `type=local,dest=${join(d, 'out-whole')}`, '-'], { input: execFileSync('tar', ['-C', ctx, '-cf', '-', '.']) });
  assert.equal(whole.code, 0, whole.stderr);
  assert.deepEqual((await readdir(join(d, 'out-whole', 'all'))).sort(), ['.dockerignore', 'Dockerfile', 'Other.Dockerfile', 'Whole.Dockerfile', 'sub']);
  // The temporary context and its digest table are gone; --explain compares with the last build from standard input.
  assert.deepEqual(await readdir(join(root, 'tmp')), []);
  await writeFile(join(ctx, 'sub', 'a.txt'), 'changed\n');
  const again = await runKiln(['build', '--root', root, '--explain', '--progress', 'plain', '-'], { input: execFileSync('tar', ['-C', ctx, '-cf', '-', '.']) });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /cache miss: COPY sub\/a\.txt \/copied\.txt: 1 file changed: sub\/a\.txt \(content\)/);

  for (const [flags, input, message] of [
    [['-f', 'missing'], tarball, /the context on standard input has no missing/],
    [['-f', '../x'], tarball, /-f \.\.\/x: must name a file inside the context archive/],
    [['-f', 'Dockerfile.x'], 'FROM scratch\n', /-f names a Dockerfile inside the context archive, but standard input is not a tar archive/],
    [['-f', '-'], 'FROM scratch\n', /-f - and a context of - cannot both read standard input/],
    [[], Buffer.from('BZh91AY&SY'), /bzip2-compressed: kiln reads a plain or gzip tar/],
  ] as const) {
    const r = await runKiln(['build', '--root', root, ...flags, '-'], { input });
    assert.notEqual(r.code, 0, flags.join(' '));
    assert.match(r.stderr, message);
  }
  assert.deepEqual(await readdir(join(root, 'tmp')), [], 'a failed build leaves no context behind');
});

test('-o type=cacheonly writes no output: the build only fills the cache and --cache-to', async () => {
  const { d, ctx, root } = await project('FROM scratch\nCOPY a.txt /\n', { 'a.txt': 'a\n' });
  const cache = join(d, 'cache');
  const r = await runKiln(['build', '--root', root, '-o', 'type=cacheonly', '--cache-to', `type=local,dest=${cache}`, ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await readdir(cache)).includes('index.json'));
  assert.deepEqual((await readdir(d)).sort(), ['cache', 'ctx', 'store']);
  const bad = await runKiln(['build', '--root', root, '-o', 'type=cacheonly,dest=x', ctx]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--output: type=cacheonly has no option "dest"/);
});

test('.dockerignore escapes read as BuildKit reads them; a pattern its regexp refuses fails the build, naming the file and the pattern', async () => {
  const { d, ctx, root } = await project('FROM scratch\nCOPY . /ctx/\n', { '#b': '', '!n': '', 'a b': '', keep: '' });
  await writeFile(join(ctx, '.dockerignore'), '\\#b\n\\!n\na\\ b\n');
  const out = join(d, 'out');
  const r = await runKiln(['build', '--root', root, '-o', `type=local,dest=${out}`, '--progress', 'plain', ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await files(out), ['ctx', 'ctx/.dockerignore', 'ctx/Dockerfile', 'ctx/keep']);
  await writeFile(join(ctx, '.dockerignore'), 'keep\n\\q\n');
  const bad = await runKiln(['build', '--root', root, '-o', `type=local,dest=${join(d, 'o2')}`, '--progress', 'plain', ctx]);
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /\.dockerignore: syntax error in pattern: "\\\\q"/);
});

test('an exec form followed by more text (a comment) is still the exec form, as in BuildKit', async () => {
  const { ctx, root } = await project([
    'FROM scratch',
    'CMD ["/bin/echo", "hi"] # start the app',
    'ENTRYPOINT ["/entry"] trailing',
    'VOLUME ["/data"] # persistent',
    '',
  ].join('\n'));
  const r = await runKiln(['build', '--root', root, '-t', 'execform', ctx]);
  assert.equal(r.code, 0, r.stderr);
  const inspect = await runKiln(['inspect', '--root', root, 'execform']);
  const config = (JSON.parse(inspect.stdout) as { config: { Cmd: string[]; Entrypoint: string[]; Volumes: Record<string, unknown> } }).config;
  assert.deepEqual(config.Cmd, ['/bin/echo', 'hi']);
  assert.deepEqual(config.Entrypoint, ['/entry']);
  assert.deepEqual(Object.keys(config.Volumes), ['/data']);
});

test('--platform linux/arm64 is spelled as BuildKit spells it: no v8 in TARGETPLATFORM, TARGETVARIANT or the image config', async () => {
  const { ctx, root } = await project('FROM scratch\nARG TARGETPLATFORM\nARG TARGETVARIANT\nLABEL p=$TARGETPLATFORM v=x$TARGETVARIANT\n');
  const r = await runKiln(['build', '--root', root, '--platform', 'linux/aarch64', '-t', 'arm', ctx]);
  assert.equal(r.code, 0, r.stderr);
  const inspect = JSON.parse((await runKiln(['inspect', '--root', root, 'arm'])).stdout) as { architecture: string; variant?: string; config: { Labels: Record<string, string> } };
  assert.deepEqual(inspect.config.Labels, { p: 'linux/arm64', v: 'x' });
  assert.equal(inspect.architecture, 'arm64');
  assert.equal(inspect.variant, undefined);
});

test('as docker build: a failed build removes an earlier --iidfile and --metadata-file, an empty --target is no target, -q prints no id after an archive on stdout', async () => {
  const { d, ctx, root } = await project('FROM scratch AS first\nCOPY a /a\nFROM scratch AS last\nCOPY b /b\n', { a: 'A', b: 'B' });
  const iid = join(d, 'iid');
  const meta = join(d, 'meta.json');
  await writeFile(iid, 'stale');
  await writeFile(meta, '{}');
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY missing /m\n');
  const failed = await runKiln(['build', '--root', root, '--iidfile', iid, '--metadata-file', meta, ctx]);
  assert.equal(failed.code, 1, failed.stderr);
  assert.ok(!existsSync(iid) && !existsSync(meta), 'no id of an earlier build is left');

  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch AS first\nCOPY a /a\nFROM scratch AS last\nCOPY b /b\n');
  const out = join(d, 'out');
  const empty = await runKiln(['build', '--root', root, '--target', '', '-o', `type=local,dest=${out}`, ctx]);
  assert.equal(empty.code, 0, empty.stderr);
  assert.deepEqual(await readdir(out), ['b']);

  const quiet = await runProgram('sh', ['-c', `'${kilnBin}' build --root '${root}' -q -o - '${ctx}' | tar -t`]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.deepEqual(quiet.stdout.trim().split('\n'), ['b']);
  const raw = await runProgram('sh', ['-c', `'${kilnBin}' build --root '${root}' -q -o - '${ctx}' | wc -c`]);
  assert.equal(Number(raw.stdout.trim()) % 512, 0, 'nothing after the archive');
});
