// A build cache shared between stores through a real registry or a folder: a fresh store
// builds everything from it, gets the same image, and fetches only what the image needs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, blobDownloads } from '../helpers/registry.js';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { BASE_REF, busyboxStore, buildJson, finalStates, ranSteps, writeTree } from './fixture.js';

const registry = await startRegistry();

// Two independent stages whose outputs the final stage copies: with mode=max the cache holds
// their layers too, but a fresh store needs only the final image's.
const MULTISTAGE = `FROM ${BASE_REF} AS a
COPY a/ /src/
RUN mkdir /out && cp /src/* /out/ && echo built-a > /out/a.txt
FROM ${BASE_REF} AS b
COPY b/ /src/
RUN mkdir /out && cp /src/* /out/ && echo built-b > /out/b.txt
FROM ${BASE_REF}
COPY --from=a /out /a
COPY --from=b /out /b
RUN ls /a /b > /listing
`;

async function multistageContext(): Promise<string> {
  const ctx = await tempDir('kiln-cachectx-');
  await writeTree(ctx, { Dockerfile: MULTISTAGE, 'a/in.txt': 'input a\n', 'b/in.txt': 'input b\n' });
  return ctx;
}

async function manifestDigest(metadataFile: string): Promise<string> {
  return (JSON.parse(await readFile(metadataFile, 'utf8')) as Record<string, string>)['containerimage.digest']!;
}

async function blobJson<T>(root: string, digest: string): Promise<T> {
  return JSON.parse(await readFile(join(root, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as T;
}

/** The image's layers by diffID (stored and pushed forms of a layer differ in compression, not in diffID). */
async function imageDiffIds(root: string, digest: string): Promise<string[]> {
  const manifest = await blobJson<{ config: { digest: string } }>(root, digest);
  return (await blobJson<{ rootfs: { diff_ids: string[] } }>(root, manifest.config.digest)).rootfs.diff_ids;
}

/** The cache artifact's layer blobs, each with its diffID, read from the registry. */
async function cacheLayers(repo: string, tag: string): Promise<Map<string, string>> {
  const get = async (path: string, accept?: string) => {
    const r = await fetch(`${registry.url}/v2/${repo}/${path}`, accept ? { headers: { accept } } : {});
    assert.equal(r.status, 200, path);
    return r.json() as Promise<unknown>;
  };
  const manifest = (await get(`manifests/${tag}`, 'application/vnd.oci.image.manifest.v1+json')) as { config: { digest: string }; layers: { digest: string }[] };
  const config = (await get(`blobs/${manifest.config.digest}`)) as { diffIds: string[] };
  return new Map(manifest.layers.map((l, i) => [l.digest, config.diffIds[i]!]));
}

test('registry cache (mode=max): a fresh store runs nothing, makes the same image, and fetches only its layers', async () => {
  const ctx = await multistageContext();
  const [rootA, rootB] = [await busyboxStore(), await busyboxStore()];
  const ref = `${registry.host}/cache/multistage:buildcache`;
  const metaA = join(ctx, '..', 'meta-a.json');
  const a = await buildJson(rootA, ctx, ['--cache-to', `type=registry,ref=${ref},mode=max`, '--metadata-file', metaA]);
  assert.equal(a.code, 0, a.stderr);

  const before = registry.requests().length;
  const metaB = join(ctx, '..', 'meta-b.json');
  const b = await buildJson(rootB, ctx, ['--cache-from', `type=registry,ref=${ref}`, '--metadata-file', metaB]);
  assert.equal(b.code, 0, b.stderr);
  const states = [...finalStates(b).values()];
  assert.ok(states.length >= 7, `steps: ${[...finalStates(b)].join(' | ')}`);
  assert.deepEqual(ranSteps(b), [], 'every step comes from the cache');
  assert.equal(await manifestDigest(metaB), await manifestDigest(metaA));

  const fetched = blobDownloads(registry.requests().slice(before)).map((r) => /blobs\/(sha256:[0-9a-f]{64})/.exec(r.uri)![1]!);
  const finalDiffIds = new Set(await imageDiffIds(rootB, await manifestDigest(metaB)));
  const layers = await cacheLayers('cache/multistage', 'buildcache');
  const fetchedLayers = fetched.filter((d) => layers.has(d));
  const notFetched = [...layers.keys()].filter((d) => !fetched.includes(d));
  assert.equal(fetchedLayers.length, 3, `the final stage's three layers come from the cache (fetched ${fetched.join(', ')})`);
  for (const d of fetchedLayers) assert.ok(finalDiffIds.has(layers.get(d)!), `fetched ${d}, which the final image does not hold`);
  assert.ok(notFetched.length >= 4, 'the intermediate stages\' layers stay in the registry');
  assert.ok(fetched.length - fetchedLayers.length <= 1, `only the cache's config besides layers, got ${fetched.join(', ')}`);
});

test('local cache folder: export then import into a fresh store, every step cached, same digest', async () => {
  const ctx = await multistageContext();
  const [rootA, rootB] = [await busyboxStore(), await busyboxStore()];
  const dir = await tempDir('kiln-cachedir-');
  const metaA = join(dir, 'meta-a.json');
  const a = await buildJson(rootA, ctx, ['--cache-to', `type=local,dest=${join(dir, 'cache')},mode=max`, '--metadata-file', metaA]);
  assert.equal(a.code, 0, a.stderr);
  assert.ok((await readdir(join(dir, 'cache'))).includes('index.json'));
  const metaB = join(dir, 'meta-b.json');
  const b = await buildJson(rootB, ctx, ['--cache-from', `type=local,src=${join(dir, 'cache')}`, '--metadata-file', metaB]);
  assert.equal(b.code, 0, b.stderr);
  assert.deepEqual(ranSteps(b), []);
  assert.equal(await manifestDigest(metaB), await manifestDigest(metaA));
});

test('mode=min carries only the final stage: intermediate stages run again, the final steps still hit', async () => {
  const ctx = await multistageContext();
  const [rootA, rootB] = [await busyboxStore(), await busyboxStore()];
  const ref = `${registry.host}/cache/multistage:min`;
  const a = await buildJson(rootA, ctx, ['--cache-to', `type=registry,ref=${ref}`]);
  assert.equal(a.code, 0, a.stderr);
  const b = await buildJson(rootB, ctx, ['--cache-from', `type=registry,ref=${ref}`]);
  assert.equal(b.code, 0, b.stderr);
  const ran = ranSteps(b);
  assert.ok(ran.some((s) => s.startsWith('RUN mkdir /out')), `intermediate RUNs rerun: ${ran.join(' | ')}`);
  assert.ok(!ran.includes('RUN ls /a /b > /listing'), 'the final RUN is cached');
});

test('cache-mounts=true carries RUN --mount=type=cache folders to a fresh store', async () => {
  const ctx = await tempDir('kiln-cachemount-');
  await writeTree(ctx, {
    Dockerfile: `FROM ${BASE_REF}\nARG ROUND\nRUN --mount=type=cache,target=/cache,id=notes sh -c 'cat /cache/notes > /seen 2>/dev/null; echo "round $ROUND" >> /cache/notes'\n`,
  });
  const [rootA, rootB] = [await busyboxStore(), await busyboxStore()];
  const dir = await tempDir('kiln-cachemountdir-');
  const a = await buildJson(rootA, ctx, ['--build-arg', 'ROUND=1', '--cache-to', `type=local,dest=${dir},cache-mounts=true`]);
  assert.equal(a.code, 0, a.stderr);
  const out = await tempDir('kiln-cachemountout-');
  const b = await runKiln(['build', '--root', rootB, '--progress', 'quiet', '--build-arg', 'ROUND=2', '--cache-from', `type=local,src=${dir}`, '-o', `type=local,dest=${out}`, ctx]);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(await readFile(join(out, 'seen'), 'utf8'), 'round 1\n');
});

test('inline cache: the pushed image carries its own cache', async () => {
  const ctx = await multistageContext();
  const [rootA, rootB] = [await busyboxStore(), await busyboxStore()];
  const ref = `${registry.host}/app/multistage:inline`;
  const a = await buildJson(rootA, ctx, ['-t', ref, '--push', '--cache-to', 'type=inline']);
  assert.equal(a.code, 0, a.stderr);
  const b = await buildJson(rootB, ctx, ['--cache-from', `type=registry,ref=${ref}`]);
  assert.equal(b.code, 0, b.stderr);
  const ran = ranSteps(b);
  assert.ok(!ran.includes('RUN ls /a /b > /listing'), `the final RUN is cached: ran ${ran.join(' | ')}`);
});

test('--build-arg BUILDKIT_INLINE_CACHE=1 asks for an inline cache, as with docker build', async () => {
  const ctx = await multistageContext();
  const [rootA, rootB] = [await busyboxStore(), await busyboxStore()];
  const ref = `${registry.host}/app/multistage:inline-arg`;
  const a = await buildJson(rootA, ctx, ['-t', ref, '--push', '--build-arg', 'BUILDKIT_INLINE_CACHE=1']);
  assert.equal(a.code, 0, a.stderr);
  const b = await buildJson(rootB, ctx, ['--cache-from', ref]);
  assert.equal(b.code, 0, b.stderr);
  const ran = ranSteps(b);
  assert.ok(!ran.includes('RUN ls /a /b > /listing'), `the final RUN is cached: ran ${ran.join(' | ')}`);
});

test('a cache that does not exist yet is not an error; a malformed spec is', async () => {
  const ctx = await multistageContext();
  const root = await busyboxStore();
  const ok = await buildJson(root, ctx, ['--cache-from', `type=registry,ref=${registry.host}/cache/none:yet`]);
  assert.equal(ok.code, 0, ok.stderr);
  const bad = await runKiln(['build', '--root', root, '--cache-to', 'type=s3,bucket=x', ctx]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--cache-to: unknown cache type "s3": kiln does not reach S3; use type=registry, or type=local/);
  const gha = await runKiln(['build', '--root', root, '--cache-from', 'type=gha,scope=main', ctx]);
  assert.equal(gha.code, 2);
  assert.match(gha.stderr, /--cache-from: unknown cache type "gha": kiln does not reach the GitHub Actions cache service/);
  const other = await runKiln(['build', '--root', root, '--cache-to', 'type=floppy', ctx]);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /--cache-to: unknown cache type "floppy" \(expected registry, local or inline\)/);
});
