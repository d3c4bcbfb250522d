// kiln build with registries on both ends: FROM pulls a base that was pushed to a real registry,
// --push and --output type=registry publish the result, podman runs it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runKiln, runProgram } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { startRegistry, blobDownloads, completedUploads } from '../helpers/registry.js';
import { Store } from '../../src/store/store.js';
import { pushImage } from '../../src/registry/push.js';
import { busyboxLayer, imageOf, storeImage } from './fixtures.js';

const reg = await startRegistry();
const base = imageOf([await busyboxLayer()]);
const baseRef = `${reg.host}/base/busybox:1`;
{
  const s = await Store.open(await tempDir('kiln-store-'));
  await storeImage(s, base);
  await pushImage(s, base.manifest.digest, baseRef);
}

async function context(): Promise<string> {
  const ctx = await tempDir('kiln-ctx-');
  await mkdir(ctx, { recursive: true });
  await writeFile(join(ctx, 'Dockerfile'), `FROM ${baseRef}\nRUN echo built by kiln > /msg\nCMD ["/bin/cat", "/msg"]\n`);
  return ctx;
}

test('FROM pulls from the registry once; --push publishes; podman runs the result', async () => {
  const root = await tempDir('kiln-store-');
  const ctx = await context();
  const dl0 = blobDownloads(reg.requests()).length;
  const up0 = completedUploads(reg.requests()).length;
  const app = `${reg.host}/app/hello:1`;
  const b1 = await runKiln(['build', '--root', root, '--progress', 'plain', '-t', app, '--push', ctx]);
  assert.equal(b1.code, 0, b1.stderr);
  assert.equal(blobDownloads(reg.requests()).length - dl0, 2, 'base config + layer');
  // The base layer came from another repository of this registry: mounted, not uploaded.
  assert.equal(completedUploads(reg.requests()).length - up0, 2, 'only the new config and the RUN layer');
  assert.ok(reg.requests().some((q) => q.method === 'POST' && q.uri.includes('/app/hello/blobs/uploads/?') && q.uri.includes('mount=') && q.status === 201));

  const pod = await tempDir('kiln-podman-');
  const podman = ['--root', join(pod, 'root'), '--runroot', join(pod, 'run'), '--storage-driver', 'vfs', '--runtime', 'runc', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
  const pull = await runProgram('podman', [...podman, 'pull', '--tls-verify=false', app]);
  assert.equal(pull.code, 0, pull.stderr);
  const run = await runProgram('podman', [...podman, 'run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', app]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, 'built by kiln\n');

  // A second build in the same store: the base is local, nothing is downloaded.
  const dl1 = blobDownloads(reg.requests()).length;
  const up1 = completedUploads(reg.requests()).length;
  const b2 = await runKiln(['build', '--root', root, '--progress', 'plain', '-t', app, '--push', ctx]);
  assert.equal(b2.code, 0, b2.stderr);
  assert.equal(blobDownloads(reg.requests()).length - dl1, 0);
  assert.equal(completedUploads(reg.requests()).length - up1, 0, 'pushing the same image again uploads nothing');
});

test('--output type=registry pushes; a missing base image is a clear error', async () => {
  const root = await tempDir('kiln-store-');
  const ctx = await context();
  const out = `${reg.host}/app/output:2`;
  const r = await runKiln(['build', '--root', root, '--progress', 'plain', '--output', `type=registry,name=${out}`, ctx]);
  assert.equal(r.code, 0, r.stderr);
  const s = await runProgram('skopeo', ['inspect', '--tls-verify=false', `docker://${out}`]);
  assert.equal(s.code, 0, s.stderr);
  assert.equal((JSON.parse(s.stdout) as { Layers: string[] }).Layers.length, 2);

  const missing = await tempDir('kiln-ctx-');
  await writeFile(join(missing, 'Dockerfile'), `FROM ${reg.host}/base/absent:1\nRUN true\n`);
  const m = await runKiln(['build', '--root', root, '--progress', 'plain', missing]);
  assert.equal(m.code, 1, m.stderr);
  assert.match(m.stderr, new RegExp(`${reg.host}/base/absent:1: not found in the registry`));
});

test('a registry output is its own export: compression, annotations, push-by-digest and store=false are honoured', async () => {
  const root = await tempDir('kiln-store-');
  const ctx = await context();
  const tagged = `${reg.host}/app/options:1`;
  const byDigest = `${reg.host}/app/bydigest:1`;
  const meta = join(await tempDir('kiln-meta-'), 'meta.json');
  const r = await runKiln(['build', '--root', root, '--progress', 'plain', '--metadata-file', meta,
    '--annotation', 'org.opencontainers.image.title=From the flag',
    '--output', `type=image,name=${byDigest},push=true,push-by-digest=true,store=false`,
    '--output', `type=registry,name=${tagged},compression=zstd,annotation.org.example.Output=yes`, ctx]);
  assert.equal(r.code, 0, r.stderr);
  const raw = await runProgram('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${tagged}`]);
  assert.equal(raw.code, 0, raw.stderr);
  const manifest = JSON.parse(raw.stdout) as { layers: { mediaType: string }[]; annotations?: Record<string, string> };
  assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'), raw.stdout);
  assert.deepEqual(manifest.annotations, { 'org.opencontainers.image.title': 'From the flag', 'org.example.Output': 'yes' });

  // push-by-digest: the manifest is in its repository under its digest (the first push, which the
  // metadata names), and no tag was made.
  const metadata = JSON.parse(await readFile(meta, 'utf8')) as Record<string, unknown>;
  const digest = metadata['containerimage.digest'] as string;
  const pinned = await runProgram('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/app/bydigest@${digest}`]);
  assert.equal(pinned.code, 0, pinned.stderr);
  // As buildx writes it: the descriptor of the manifest pushed.
  assert.deepEqual(metadata['containerimage.descriptor'], { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: Buffer.byteLength(pinned.stdout) });
  assert.match(pinned.stdout, /"org.opencontainers.image.title":"From the flag"/);
  assert.match(pinned.stdout, /tar\+gzip/);
  const tags = await runProgram('skopeo', ['list-tags', '--tls-verify=false', `docker://${reg.host}/app/bydigest`]);
  assert.ok(tags.code !== 0 || ((JSON.parse(tags.stdout) as { Tags: string[] | null }).Tags ?? []).length === 0, tags.stdout);
  // store=false: that name is not in the local store; the registry output's name is.
  const images = await runKiln(['images', '--root', root]);
  assert.match(images.stdout, /app\/options/);
  assert.doesNotMatch(images.stdout, /bydigest/);

  // Outputs go in a folder of their own: a refused output must leave nothing there.
  const outDir = await tempDir('kiln-out-');
  for (const [flags, message] of [
    [['--annotation', 'index:k=v'], /--annotation: index annotations are not supported/],
    [['--annotation', 'manifest[linux/amd64]:k=v'], /--annotation: kiln builds one platform/],
    [['--annotation', 'manifest-descriptor:k=v', '-t', 'x'], /only an OCI layout output .* has a manifest descriptor/],
    [['--output', `type=registry,name=${tagged},annotation-manifest-descriptor.k=v`], /type=registry pushes or stores one manifest/],
    [['--output', `type=local,dest=${join(outDir, 'out')},annotation.k=v`], /type=local has no option "annotation\.k"/],
    [['--output', `type=oci,dest=${join(outDir, 'o.tar')},oci-mediatypes=false,annotation.k=v`], /annotations need OCI media types/],
  ] as const) {
    const bad = await runKiln(['build', '--root', root, '--progress', 'plain', ...flags, ctx]);
    assert.equal(bad.code, 2, `${flags.join(' ')}: ${bad.stderr}`);
    assert.match(bad.stderr, message);
  }
  assert.deepEqual(await readdir(outDir), []);
});
