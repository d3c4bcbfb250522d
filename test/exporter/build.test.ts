// Through `kiln build`: reproducible digests across fresh stores and context mtimes, and the
// busybox image (FROM scratch + COPY) exported as docker/oci and read by podman and umoci.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runKiln, runProgram } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { makeBusyboxRootfs } from '../helpers/busybox.js';
import { unmountAllUnder } from '../../src/store/mounts.js';
import { touchTree } from '../image/fixtures.js';
import { assertValidOci } from '../image/oci-schemas.js';
import { diffTrees, readTree } from './tree.js';

const DOCKERFILE = 'FROM scratch\nCOPY rootfs/ /\nCOPY file.txt /file\nENV GREETING=hello\nCMD ["/bin/sh"]\n';

async function makeContext(dir: string, mtime: number): Promise<void> {
  await mkdir(join(dir, 'rootfs'), { recursive: true });
  await makeBusyboxRootfs(join(dir, 'rootfs'));
  await writeFile(join(dir, 'file.txt'), 'built by kiln\n');
  await writeFile(join(dir, 'Dockerfile'), DOCKERFILE);
  await touchTree(dir, mtime);
}

async function digestOf(root: string, name: string): Promise<string> {
  const r = await runKiln(['inspect', name, '--root', root]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { manifestDigest: string }).manifestDigest;
}

test('two fresh stores, same contents, different mtimes: the same manifest digest', async () => {
  const work = await tempDir();
  const digests: string[] = [];
  for (const [i, mtime] of [[1, 1_500_000_000], [2, 1_700_000_000]] as const) {
    const ctx = join(work, `ctx${i}`);
    await makeContext(ctx, mtime);
    const r = await runKiln(['build', '--root', join(work, `store${i}`), '-t', 'repro:1', ctx]);
    assert.equal(r.code, 0, r.stderr);
    digests.push(await digestOf(join(work, `store${i}`), 'repro:1'));
  }
  assert.equal(digests[0], digests[1]);
  // SOURCE_DATE_EPOCH changes the created times, and so the digest, reproducibly too.
  const r = await runKiln(['build', '--root', join(work, 'store3'), '-t', 'repro:1', join(work, 'ctx1')], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
  assert.equal(r.code, 0, r.stderr);
  const sde = await runKiln(['inspect', 'repro:1', '--root', join(work, 'store3')]);
  assert.equal((JSON.parse(sde.stdout) as { created: string }).created, '2023-11-14T22:13:20Z');
  assert.notEqual(await digestOf(join(work, 'store3'), 'repro:1'), digests[0]);
  // As buildx passes it, a build arg: the same image, and no warning that the arg went unused.
  const arg = await runKiln(['build', '--root', join(work, 'store4'), '--progress', 'plain', '-t', 'repro:1', '--build-arg', 'SOURCE_DATE_EPOCH=1700000000', join(work, 'ctx1')], {
    env: { SOURCE_DATE_EPOCH: undefined },
  });
  assert.equal(arg.code, 0, arg.stderr);
  assert.doesNotMatch(arg.stderr, /SOURCE_DATE_EPOCH was given but no ARG/);
  assert.equal(await digestOf(join(work, 'store4'), 'repro:1'), await digestOf(join(work, 'store3'), 'repro:1'));
});

test('kiln build -o type=docker: podman loads and runs the busybox image; -o type=oci,tar=false: umoci unpacks the context tree', async () => {
  const work = await tempDir();
  const ctx = join(work, 'ctx');
  await makeContext(ctx, 1_600_000_000);
  const root = join(work, 'store');
  const dockerTar = join(work, 'img-docker.tar');
  const ociDir = join(work, 'img-oci');
  const r = await runKiln(['build', '--root', root, '-o', `type=docker,dest=${dockerTar},name=kiln.test/busybox:1`, '-o', `type=oci,dest=${ociDir},tar=false,name=kiln.test/busybox:1`, ctx]);
  assert.equal(r.code, 0, r.stderr);

  await assertValidOci(MediaTypes.index, await readFile(join(ociDir, 'index.json'), 'utf8'), 'index.json');
  const bundle = join(work, 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${ociDir}:1`, bundle]);
  const expected = join(work, 'expected');
  await mkdir(expected);
  execFileSync('cp', ['-a', `${join(ctx, 'rootfs')}/.`, expected]);
  await writeFile(join(expected, 'file'), 'built by kiln\n');
  assert.deepEqual(diffTrees(await readTree(join(bundle, 'rootfs')), await readTree(expected)), []);

  const podRoot = await mkdtemp(join(tmpdir(), 'kiln-podman-'));
  after(async () => {
    unmountAllUnder(podRoot);
    await rm(podRoot, { recursive: true, force: true });
  });
  const podman = ['--root', join(podRoot, 'root'), '--runroot', join(podRoot, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
  const load = await runProgram('podman', [...podman, 'load', '-i', dockerTar]);
  assert.equal(load.code, 0, load.stderr);
  const run = await runProgram('podman', [
    ...podman, 'run', '--rm', '--network', 'none', '--runtime', 'runc',
    '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
    'kiln.test/busybox:1', 'sh', '-c', 'cat /file; echo $GREETING',
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, 'built by kiln\nhello\n');
});

const MediaTypes = { index: 'application/vnd.oci.image.index.v1+json' };
