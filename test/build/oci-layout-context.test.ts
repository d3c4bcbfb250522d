// --build-context NAME=oci-layout://PATH[:TAG][@DIGEST] through the CLI: an image in an OCI layout
// folder (written by kiln's own type=oci output and by skopeo) used by FROM and COPY --from in a
// store that has never seen it, with no registry; tags, digests and indexes resolved as buildx
// resolves them; bad layouts refused naming the flag or the FROM line, the store left sound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readFile, writeFile, readdir } from 'node:fs/promises';
import { tempDir } from '../helpers/tmp.js';
import { runKiln, runProgram } from '../helpers/kiln.js';
import { busyboxStore, writeTree, buildJson, assertOk, ranSteps, BASE_REF } from './fixture.js';
import { verifyStore } from './store-check.js';

const root = await busyboxStore();

interface Index {
  schemaVersion: number;
  mediaType?: string;
  manifests: { mediaType: string; digest: string; size: number; platform?: { os: string; architecture: string }; annotations?: Record<string, string> }[];
}

/** A layout folder holding `tag`: busybox with /greeting and ENV GREETING, written by kiln's OCI output. */
async function layoutWith(greeting: string, tag: string): Promise<{ dir: string; index: Index }> {
  const dir = await tempDir('kiln-layout-');
  await writeTree(join(dir, 'ctx'), { Dockerfile: `FROM ${BASE_REF}\nRUN echo ${greeting} > /greeting\nENV GREETING=${greeting}\n` });
  const r = await runKiln(['build', '--root', root, '--progress', 'quiet', '-t', `kiln.test/base:${tag}`, '-o', `type=oci,tar=false,dest=${join(dir, 'layout')}`, join(dir, 'ctx')]);
  assertOk(r);
  const index = JSON.parse(await readFile(join(dir, 'layout', 'index.json'), 'utf8')) as Index;
  return { dir: join(dir, 'layout'), index };
}

const APP = `FROM base AS use
RUN echo "$GREETING" > /from-env && cat /greeting > /from-file

FROM ${BASE_REF}
COPY --from=base /greeting /copied
`;

async function app(): Promise<{ ctx: string; out: string; store: string }> {
  const dir = await tempDir('kiln-layout-app-');
  await writeTree(join(dir, 'ctx'), { Dockerfile: APP });
  // A store with only the busybox base: the layout's image must come from the folder alone.
  return { ctx: join(dir, 'ctx'), out: join(dir, 'out'), store: await busyboxStore() };
}

test('FROM and COPY --from read an image from an OCI layout, by tag, by default tag and by digest, without a registry', async () => {
  const { dir, index } = await layoutWith('hello', 'v1');
  const p = await app();
  const byTag = await buildJson(p.store, p.ctx, ['--target', 'use', '--build-context', `base=oci-layout://${dir}:v1`, '-o', `type=local,dest=${p.out}`]);
  assertOk(byTag);
  assert.equal(await readFile(join(p.out, 'from-env'), 'utf8'), 'hello\n', 'the image config (ENV) comes from the layout');
  assert.equal(await readFile(join(p.out, 'from-file'), 'utf8'), 'hello\n');
  assert.ok(byTag.steps.some((s) => s.name.startsWith('[internal] load oci-layout://') && s.name.includes(`:v1@${index.manifests[0]!.digest}`)));

  // One manifest and no `latest` tag: buildx takes the only one.
  const only = await buildJson(p.store, p.ctx, ['--build-context', `base=oci-layout://${dir}`, '-o', `type=local,dest=${join(p.out, 'only')}`]);
  assertOk(only);
  assert.equal(await readFile(join(p.out, 'only', 'copied'), 'utf8'), 'hello\n');

  // The same image by digest is the same cache key: nothing runs again.
  const byDigest = await buildJson(p.store, p.ctx, ['--target', 'use', '--build-context', `base=oci-layout://${dir}@${index.manifests[0]!.digest}`]);
  assertOk(byDigest);
  assert.deepEqual(ranSteps(byDigest), []);
  await verifyStore(p.store);
});

test('a layout written by skopeo, with several tags, and an index naming two platforms', async () => {
  const { dir } = await layoutWith('first', 'v1');
  const second = await layoutWith('second', 'v2');
  // skopeo adds v2 beside v1 in the first layout: two manifests, told apart by their ref.name.
  const s = await runProgram('skopeo', ['copy', '--quiet', `oci:${second.dir}:v2`, `oci:${dir}:v2`]);
  assert.equal(s.code, 0, s.stderr);
  const p = await app();
  for (const [tag, want] of [['v1', 'first'], ['v2', 'second']] as const) {
    const r = await buildJson(p.store, p.ctx, ['--target', 'use', '--build-context', `base=oci-layout://${dir}:${tag}`, '-o', `type=local,dest=${join(p.out, tag)}`]);
    assertOk(r);
    assert.equal(await readFile(join(p.out, tag, 'from-file'), 'utf8'), `${want}\n`);
  }
  // Two manifests and no tag: nothing is "latest", and the flag says which tags there are.
  const untagged = await runKiln(['build', '--root', p.store, '--build-context', `base=oci-layout://${dir}`, p.ctx]);
  assert.equal(untagged.code, 2, untagged.stderr);
  assert.match(untagged.stderr, /--build-context base: oci-layout reference .* could not be resolved: no image is tagged "latest" \(tags: v1, v2\)/);

  // An index for two platforms, of which the layout holds only this machine's blobs.
  const index = JSON.parse(await readFile(join(second.dir, 'index.json'), 'utf8')) as Index;
  const own = index.manifests[0]!;
  const multi = {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: own.mediaType, digest: `sha256:${'0'.repeat(64)}`, size: 1, platform: { os: 'linux', architecture: 's390x' } },
      { mediaType: own.mediaType, digest: own.digest, size: own.size, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  };
  const body = Buffer.from(JSON.stringify(multi));
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  await writeFile(join(second.dir, 'blobs', 'sha256', digest.slice(7)), body);
  const r = await buildJson(p.store, p.ctx, ['--target', 'use', '--build-context', `base=oci-layout://${second.dir}@${digest}`, '-o', `type=local,dest=${join(p.out, 'multi')}`]);
  assertOk(r);
  assert.equal(await readFile(join(p.out, 'multi', 'from-file'), 'utf8'), 'second\n');
  const other = await runKiln(['build', '--root', p.store, '--target', 'use', '--platform', 'linux/arm64', '--build-context', `base=oci-layout://${second.dir}@${digest}`, p.ctx]);
  assert.equal(other.code, 1, other.stderr);
  assert.match(other.stderr, /Dockerfile:1:1: image oci-layout:\/\/.*: the layout's index: no image for platform linux\/arm64 \(the index has: linux\/s390x, linux\/amd64\)/);
});

test('bad layouts fail naming the flag or the FROM line, and leave the store sound', async () => {
  const { dir, index } = await layoutWith('bad', 'v1');
  const p = await app();
  const missing = join(dir, 'nothing-here');
  for (const [value, message] of [
    [`base=oci-layout://${missing}`, /--build-context base: oci-layout reference .*nothing-here could not be resolved: cannot read .*index\.json: ENOENT/],
    [`base=oci-layout://${dir}@sha256:abc`, /--build-context base: "sha256:abc" is not a sha256 digest/],
    ['base=oci-layout://', /--build-context base: oci-layout:\/\/ names no folder/],
  ] as const) {
    const r = await runKiln(['build', '--root', p.store, '--progress', 'plain', '--build-context', value, p.ctx]);
    assert.equal(r.code, 2, `${value}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /#\d+ /, 'no step started');
  }

  // A digest the layout lacks, and a layer whose bytes are not its digest: the FROM line fails.
  const absent = await runKiln(['build', '--root', p.store, '--target', 'use', '--build-context', `base=oci-layout://${dir}@sha256:${'1'.repeat(64)}`, p.ctx]);
  assert.equal(absent.code, 1, absent.stderr);
  assert.match(absent.stderr, /Dockerfile:1:1: image oci-layout:\/\/.*: blob sha256:1{64} is missing from the layout/);
  const manifest = JSON.parse(await readFile(join(dir, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  const layer = join(dir, 'blobs', 'sha256', manifest.layers.at(-1)!.digest.slice(7));
  await writeFile(layer, Buffer.concat([await readFile(layer), Buffer.from('tampered')]));
  const corrupt = await runKiln(['build', '--root', p.store, '--target', 'use', '--build-context', `base=oci-layout://${dir}:v1`, p.ctx]);
  assert.equal(corrupt.code, 1, corrupt.stderr);
  assert.match(corrupt.stderr, new RegExp(`Dockerfile:1:1: image oci-layout://.*: the layout's content for ${manifest.layers.at(-1)!.digest} does not match its digest`));
  await verifyStore(p.store);
  assert.deepEqual((await readdir(join(p.store, 'tmp'))).filter((n) => n.endsWith('-ingest')), [], 'no half-copied blob is left');
});
