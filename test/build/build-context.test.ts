// --build-context through the CLI: a folder reached by COPY --from, RUN --mount=from= and FROM,
// filtered by its own .dockerignore; a context in place of a stage or of an image; rebuilds
// when its files change; bad values refused before anything runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tempDir } from '../helpers/tmp.js';
import { runKiln } from '../helpers/kiln.js';
import { busyboxStore, writeTree, buildJson, assertOk, ranSteps, BASE_REF } from './fixture.js';

// At the top level, not in before(): tempDir's cleanup would run when the hook ends.
const root = await busyboxStore();

const DOCKERFILE = `FROM ${BASE_REF} AS tools
RUN echo from-stage > /which

FROM ${BASE_REF} AS app
COPY --from=docs . /docs/
RUN --mount=from=docs,target=/m ls -a /m > /mounted
COPY --from=tools /which /which
COPY main.txt /

FROM docs AS site
COPY --from=app /bin/busybox /bin/busybox
RUN ["/bin/busybox", "cp", "/a.md", "/copied.md"]
`;

async function project(): Promise<{ ctx: string; docs: string; tools: string; out: string }> {
  const dir = await tempDir('kiln-build-context-');
  await writeTree(dir, {
    'app/Dockerfile': DOCKERFILE,
    'app/main.txt': 'main\n',
    'docs/a.md': 'doc a\n',
    'docs/private.md': 'not for the image\n',
    'docs/.dockerignore': 'private.md\n',
    'tools/which': 'from-folder\n',
  });
  return { ctx: join(dir, 'app'), docs: join(dir, 'docs'), tools: join(dir, 'tools'), out: join(dir, 'out') };
}

async function files(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

test('a folder context is read by COPY --from and RUN --mount=from, through its own .dockerignore', async () => {
  const p = await project();
  const r = await buildJson(root, p.ctx, ['--target', 'app', '--build-context', `docs=${p.docs}`, '-o', `type=local,dest=${p.out}`]);
  assertOk(r);
  assert.deepEqual(await files(join(p.out, 'docs')), ['.dockerignore', 'a.md']);
  assert.equal(await readFile(join(p.out, 'mounted'), 'utf8'), '.\n..\n.dockerignore\na.md\n');
  assert.equal(await readFile(join(p.out, 'which'), 'utf8'), 'from-stage\n');
  assert.equal(await readFile(join(p.out, 'main.txt'), 'utf8'), 'main\n');

  // One file of the named context changes: the steps that read it run again, the others are cached.
  await writeFile(join(p.docs, 'a.md'), 'doc a, edited\n');
  const again = await buildJson(root, p.ctx, ['--target', 'app', '--build-context', `docs=${p.docs}`, '--explain']);
  assertOk(again);
  assert.deepEqual(ranSteps(again), ['COPY --from=docs . /docs/', 'COPY --from=tools /which /which', 'COPY main.txt /', 'RUN --mount=from=docs,target=/m ls -a /m > /mounted']);
  assert.match(again.stderr, /COPY --from=docs \. \/docs\/: 1 file changed: a\.md \(content\)/);
});

test('a context named like a stage replaces it; one named like an image replaces the image', async () => {
  const p = await project();
  const r = await buildJson(root, p.ctx, ['--target', 'app', '--build-context', `docs=${p.docs}`, '--build-context', `tools=${p.tools}`, '-o', `type=local,dest=${p.out}`]);
  assertOk(r);
  assert.equal(await readFile(join(p.out, 'which'), 'utf8'), 'from-folder\n');
  assert.ok(!r.steps.some((s) => s.name.includes('RUN echo from-stage')), 'the replaced stage is not built');

  // FROM an image this store has never seen, with the context naming one it has: no pull.
  const alpine = await tempDir('kiln-build-context-image-');
  await writeTree(alpine, { Dockerfile: 'FROM docker.io/library/alpine:3.19\nRUN echo ran > /ran\n' });
  const img = await buildJson(root, alpine, ['--build-context', `alpine:3.19=docker-image://${BASE_REF}`, '-o', `type=local,dest=${join(alpine, 'out')}`]);
  assertOk(img);
  assert.ok(existsSync(join(alpine, 'out', 'bin', 'busybox')), 'the base is the busybox image');
  assert.equal(await readFile(join(alpine, 'out', 'ran'), 'utf8'), 'ran\n');
});

test('FROM a folder context: its files are the first layer, with a history entry', async () => {
  const p = await project();
  const tag = 'kiln.test/site:1';
  const r = await buildJson(root, p.ctx, ['--target', 'site', '-t', tag, '--build-context', `docs=${p.docs}`, '-o', `type=local,dest=${p.out}`]);
  assertOk(r);
  assert.deepEqual(await files(p.out), ['.dockerignore', 'a.md', 'bin', 'bin/busybox', 'copied.md']);
  const h = await runKiln(['history', '--json', '--root', root, tag]);
  assertOk(h);
  const history = (JSON.parse(h.stdout) as { createdBy: string; emptyLayer: boolean }[]).reverse();
  assert.equal(history.length, 3);
  assert.match(history[0]!.createdBy, /FROM docs/);
  assert.equal(history[0]!.emptyLayer, false);
});

test('bad --build-context values fail before anything runs, naming the flag', async () => {
  const p = await project();
  for (const [value, message] of [
    ['docs', /--build-context: expected NAME=PATH, NAME=docker-image:\/\/REF, NAME=oci-layout:\/\/PATH or NAME=URL, got "docs"/],
    [`docs=${join(p.docs, 'missing')}`, /--build-context docs: .*missing is not a folder/],
    ['docs=s3://bucket/docs.tar', /--build-context docs: s3 contexts are not supported by kiln/],
    ['Docs=./docs', /--build-context: "Docs" cannot be a context name/],
    ['docs=docker-image://UPPER', /--build-context docs: invalid reference "UPPER"/],
  ] as const) {
    const r = await runKiln(['build', '--root', root, '--progress', 'plain', '--build-context', value, p.ctx]);
    assert.equal(r.code, 2, `${value}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /#\d+ /, 'no step started');
  }
  const twice = await runKiln(['build', '--root', root, '--build-context', `docs=${p.docs}`, '--build-context', `docs:latest=${p.tools}`, p.ctx]);
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /"docs:latest" is given twice/);
});
