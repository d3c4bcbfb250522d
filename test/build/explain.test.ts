// --explain through the CLI: why a step ran although the previous build of the same
// Dockerfile had it cached, in the words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chmod, writeFile, unlink, readdir, readFile, stat } from 'node:fs/promises';
import { tempDir } from '../helpers/tmp.js';
import { runKiln } from '../helpers/kiln.js';
import { busyboxStore, writeTree, buildJson, assertOk, BASE_REF, type BuildRun } from './fixture.js';
import type { ExplainEvent } from '../../src/solver/events.js';
import { USAGE_KINDS } from '../../src/store/gc.js';

// At the top level, not in before(): tempDir's cleanup would run when the hook ends.
const root = await busyboxStore();

const DOCKERFILE = `FROM ${BASE_REF}
COPY make /usr/bin/make
ARG VERSION=1.2
WORKDIR /app
COPY src/ /app
RUN make
`;

async function project(): Promise<string> {
  const ctx = await tempDir('kiln-explain-');
  await writeTree(ctx, {
    Dockerfile: DOCKERFILE,
    make: '#!/bin/sh\necho "making $VERSION" && ls /app > /built.txt\n',
    'src/a.ts': 'export const a = 1;\n',
    'src/b.ts': 'export const b = 2;\n',
    'src/c.ts': 'export const c = 3;\n',
  });
  await chmod(join(ctx, 'make'), 0o755);
  await chmod(join(ctx, 'src/b.ts'), 0o644);
  return ctx;
}

function reasons(run: BuildRun): string[] {
  return run.events.filter((e): e is ExplainEvent => e.type === 'explain').flatMap((e) => e.reasons);
}

test('--explain names changed files, the parent step, and build args', async () => {
  const ctx = await project();
  const first = await buildJson(root, ctx, ['--explain']);
  assertOk(first);
  assert.deepEqual(reasons(first), [], 'nothing to compare with on the first build');

  await writeFile(join(ctx, 'src/a.ts'), 'export const a = 10;\n');
  await chmod(join(ctx, 'src/b.ts'), 0o755);
  await writeFile(join(ctx, 'src/new.ts'), 'export {};\n');
  const second = await buildJson(root, ctx, ['--explain']);
  assertOk(second);
  assert.deepEqual(reasons(second), [
    'COPY src/ /app: 3 files changed: src/a.ts (content), src/b.ts (mode 644 -> 755), src/new.ts (added)',
    'RUN make: parent step changed (COPY src/ /app)',
  ]);

  const third = await buildJson(root, ctx, ['--explain', '--build-arg', 'VERSION=1.3']);
  assertOk(third);
  assert.deepEqual(reasons(third), ['RUN make: build arg VERSION changed 1.2 -> 1.3']);

  await unlink(join(ctx, 'src/c.ts'));
  const plain = await runKiln(['build', '--root', root, '--progress', 'plain', '--explain', '--build-arg', 'VERSION=1.3', ctx]);
  assertOk(plain);
  assert.match(plain.stderr, /^#\d+ cache miss: COPY src\/ \/app: 1 file changed: src\/c\.ts \(removed\)$/m);
  assert.match(plain.stderr, /^#\d+ cache miss: RUN make: parent step changed \(COPY src\/ \/app\)$/m);
});

test('without --explain, or when nothing changed, no explanation is printed', async () => {
  const ctx = await project();
  assertOk(await buildJson(root, ctx));
  await writeFile(join(ctx, 'src/a.ts'), 'changed\n');
  const quiet = await buildJson(root, ctx);
  assertOk(quiet);
  assert.deepEqual(reasons(quiet), []);
  const same = await buildJson(root, ctx, ['--explain']);
  assertOk(same);
  assert.deepEqual(reasons(same), []);
});

test('--explain: an edited RUN line, and every step below a changed one', async () => {
  const ctx = await project();
  assertOk(await buildJson(root, ctx));
  await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE.replace('RUN make', 'RUN make && true'));
  // The step's text changed: it is compared with the step that stood at its place before.
  const edited = await buildJson(root, ctx, ['--explain']);
  assertOk(edited);
  assert.deepEqual(reasons(edited), ['RUN make && true: command changed']);

  await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE.replace('COPY make', 'COPY  make'));
  assertOk(await buildJson(root, ctx));
  await writeFile(join(ctx, 'make'), '#!/bin/sh\necho "making again $VERSION"\n');
  const changed = await buildJson(root, ctx, ['--explain']);
  assertOk(changed);
  assert.deepEqual(reasons(changed), [
    'COPY  make /usr/bin/make: 1 file changed: make (content)',
    'WORKDIR /app: parent step changed (COPY  make /usr/bin/make)',
    'COPY src/ /app: parent step changed (WORKDIR /app)',
    'RUN make: parent step changed (COPY src/ /app)',
  ]);
});

test('--explain: a line added above renumbers the steps, and they are still compared with their earlier selves; an owner change says so', async () => {
  const ctx = await tempDir('kiln-explain-moved-');
  const dockerfile = (user: string) => `FROM ${BASE_REF}\n${user}WORKDIR /w\nCOPY f /w/f\nRUN cat /w/f\n`;
  await writeTree(ctx, { Dockerfile: dockerfile(''), f: 'f\n' });
  assertOk(await buildJson(root, ctx));
  // USER makes no step of its own but shifts every step's number ([stage-0 2/4] -> [stage-0 2/5]).
  await writeFile(join(ctx, 'Dockerfile'), dockerfile('USER 1000:50\n'));
  const moved = await buildJson(root, ctx, ['--explain']);
  assertOk(moved);
  assert.deepEqual(reasons(moved), [
    'WORKDIR /w: owner changed root -> 1000:50',
    'COPY f /w/f: parent step changed (WORKDIR /w)',
    'RUN cat /w/f: parent step changed (COPY f /w/f)',
  ]);
});

test('--explain: a base image that moved to another digest is named, with both digests', async () => {
  const baseCtx = await tempDir('kiln-explain-base-');
  const ctx = await tempDir('kiln-explain-child-');
  const base = (v: string) => writeTree(baseCtx, { Dockerfile: `FROM ${BASE_REF}\nRUN echo ${v} > /base\n` });
  await base('v1');
  assertOk(await buildJson(root, baseCtx, ['-t', 'kiln.test/moving:latest']));
  await writeTree(ctx, { Dockerfile: 'FROM kiln.test/moving:latest\nRUN cat /base\n' });
  assertOk(await buildJson(root, ctx));
  await base('v2');
  assertOk(await buildJson(root, baseCtx, ['-t', 'kiln.test/moving:latest']));
  const moved = await buildJson(root, ctx, ['--explain']);
  assertOk(moved);
  assert.equal(reasons(moved).length, 1);
  assert.match(reasons(moved)[0]!, /^RUN cat \/base: base image kiln\.test\/moving:latest changed sha256:[0-9a-f]{12} -> sha256:[0-9a-f]{12}$/);
  const [before, after] = reasons(moved)[0]!.match(/sha256:[0-9a-f]{12}/g)!;
  assert.notEqual(before, after);
});

test('--explain: steps that --no-cache or --no-cache-filter kept from the cache say so', async () => {
  const ctx = await tempDir('kiln-explain-nocache-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF} AS tools\nRUN echo t > /t\nFROM ${BASE_REF}\nCOPY --from=tools /t /t\nRUN cat /t\n` });
  assertOk(await buildJson(root, ctx));
  const all = await buildJson(root, ctx, ['--explain', '--no-cache']);
  assertOk(all);
  assert.deepEqual(reasons(all), ['RUN echo t > /t: --no-cache', 'COPY --from=tools /t /t: --no-cache', 'RUN cat /t: --no-cache']);
  const filtered = await buildJson(root, ctx, ['--explain', '--no-cache-filter', 'tools']);
  assertOk(filtered);
  // The COPY takes the same file again: content-keyed, it is a hit, and so is what follows.
  assert.deepEqual(reasons(filtered), ['RUN echo t > /t: --no-cache-filter tools']);
});

test('--explain: an unchanged step with no cached result (pruned, or never finished) says so', async () => {
  const store = await busyboxStore();
  const ctx = await tempDir('kiln-explain-pruned-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nRUN echo one > /one\n` });
  assertOk(await buildJson(store, ctx));
  const prune = await runKiln(['prune', '--root', store, '--keep-storage', '0']);
  assert.equal(prune.code, 0, prune.stderr);
  const after = await buildJson(store, ctx, ['--explain']);
  assertOk(after);
  assert.deepEqual(reasons(after), ['RUN echo one > /one: unchanged, but no result is cached (an earlier build did not finish it, or it was pruned)']);
  // A step that failed: the next build runs it again, with the same explanation.
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nRUN test -f /flag && echo two > /two\n` });
  const failed = await buildJson(store, ctx);
  assert.notEqual(failed.code, 0);
  const again = await buildJson(store, ctx, ['--explain']);
  assert.notEqual(again.code, 0);
  assert.deepEqual(reasons(again), ['RUN test -f /flag && echo two > /two: unchanged, but no result is cached (an earlier build did not finish it, or it was pruned)']);
});

test('--explain: a RUN\'s mounts and host name, field by field', async () => {
  const ctx = await tempDir('kiln-explain-mounts-');
  const dockerfile = (mounts: string) => `FROM ${BASE_REF}\nRUN ${mounts} true\n`;
  await writeTree(ctx, { Dockerfile: dockerfile('--mount=type=cache,target=/c --mount=type=tmpfs,target=/t') });
  assertOk(await buildJson(root, ctx));
  await writeFile(join(ctx, 'Dockerfile'), dockerfile('--mount=type=cache,target=/c,uid=5 --mount=type=secret,id=s'));
  const changed = await buildJson(root, ctx, ['--explain', '--build-arg', 'BUILDKIT_CACHE_MOUNT_NS=ns', '--build-arg', 'BUILDKIT_SANDBOX_HOSTNAME=box']);
  assertOk(changed);
  const label = 'RUN --mount=type=cache,target=/c,uid=5 --mount=type=secret,id=s true';
  assert.deepEqual(reasons(changed), [
    `${label}: tmpfs mount /t removed`,
    `${label}: cache mount /c: id /c -> ns//c`,
    `${label}: cache mount /c: uid 0 -> 5`,
    `${label}: secret mount /run/secrets/s added`,
    `${label}: BUILDKIT_SANDBOX_HOSTNAME changed buildkitsandbox -> box`,
  ]);
});

test('a record keeps its file list beside it (a cached rebuild reads only keys); a record of an older kiln, with the list inside, still explains', async () => {
  const ctx = await project();
  assertOk(await buildJson(root, ctx, ['--explain']));
  const dir = join(root, 'explain');
  const [build] = await readdir(dir).then((ds) => Promise.all(ds.map(async (d) => ({ d, t: (await stat(join(dir, d))).mtimeMs })))).then((ds) => ds.sort((a, b) => b.t - a.t).map((x) => join(dir, x.d)));
  const names = await readdir(build!);
  const records = await Promise.all(names.filter((n) => !n.endsWith('.content')).map(async (n) => ({ n, rec: JSON.parse(await readFile(join(build!, n), 'utf8')) as { name: string; content?: unknown; hasContent?: boolean } })));
  const copy = records.find((r) => r.rec.name.endsWith('COPY src/ /app'))!;
  assert.equal(copy.rec.content, undefined, 'no file list inside the record');
  assert.equal(copy.rec.hasContent, true);
  const list = JSON.parse(await readFile(join(build!, `${copy.n}.content`), 'utf8')) as Array<{ path: string }>;
  assert.deepEqual(list.map((e) => e.path), ['src', 'src/a.ts', 'src/b.ts', 'src/c.ts']);

  // The same record as an older kiln wrote it: the list inside, nothing beside it.
  await writeFile(join(build!, copy.n), JSON.stringify({ ...copy.rec, hasContent: undefined, content: list }));
  await unlink(join(build!, `${copy.n}.content`));
  await writeFile(join(ctx, 'src/b.ts'), 'export const b = 20;\n');
  const second = await buildJson(root, ctx, ['--explain']);
  assertOk(second);
  assert.deepEqual(reasons(second), ['COPY src/ /app: 1 file changed: src/b.ts (content)', 'RUN make: parent step changed (COPY src/ /app)']);
});

test('kiln du counts --explain records, and every folder a build leaves data in', async () => {
  const ctx = await project();
  assertOk(await buildJson(root, ctx, ['--explain']));
  const r = await runKiln(['du', '--json', '--root', root]);
  assert.equal(r.code, 0, r.stderr);
  const usage = JSON.parse(r.stdout) as Array<{ kind: string; count: number; bytes: number }>;
  const by = Object.fromEntries(usage.map((u) => [u.kind, u]));
  assert.ok(by['step records']!.count >= 1 && by['step records']!.bytes > 0, JSON.stringify(by['step records']));
  assert.ok(by['layer pointers']!.count >= 1, JSON.stringify(by['layer pointers']));
  // locks/, users/ and prune.lock/ hold empty markers only while a kiln runs.
  const counted = new Set(Object.values(USAGE_KINDS).flatMap((dirs) => dirs.map((d) => d.split('/')[0]!)));
  for (const name of await readdir(root)) {
    if (['locks', 'users', 'prune.lock'].includes(name) || !(await stat(join(root, name))).isDirectory()) continue;
    assert.ok(counted.has(name), `du does not count the store's ${name}/`);
  }
});

test("a build keeps the records of its own steps only: an edited step's record and file list go", async () => {
  const ctx = await project();
  assertOk(await buildJson(root, ctx, ['--explain']));
  const dir = join(root, 'explain');
  const newest = async () => {
    const ds = await Promise.all((await readdir(dir)).map(async (d) => ({ d: join(dir, d), t: (await stat(join(dir, d))).mtimeMs })));
    return ds.sort((a, b) => b.t - a.t)[0]!.d;
  };
  const build = await newest();
  const recordNames = async () => {
    const files = await readdir(build);
    const names = await Promise.all(files.filter((f) => !f.endsWith('.content')).map(async (f) => (JSON.parse(await readFile(join(build, f), 'utf8')) as { name: string }).name.replace(/^\[[^\]]*\]\s*/, '')));
    return { names: names.sort(), lists: files.filter((f) => f.endsWith('.content')).length };
  };
  assert.deepEqual(await recordNames(), { names: ['COPY make /usr/bin/make', 'COPY src/ /app', 'RUN make', 'WORKDIR /app'], lists: 2 });

  await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE.replace('COPY src/ /app', 'COPY src/a.ts /app/'));
  const second = await buildJson(root, ctx, ['--explain']);
  assertOk(second);
  assert.equal(await newest(), build, 'the same Dockerfile and context: the same folder of records');
  assert.deepEqual(await recordNames(), { names: ['COPY make /usr/bin/make', 'COPY src/a.ts /app/', 'RUN make', 'WORKDIR /app'], lists: 2 });
});
