// A prune runs alone on its store: it waits for the other kiln processes using the store, kiln
// commands started during a prune wait for it, and what killed processes left does not count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { kilnBin } from '../helpers/paths.js';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { processIdentity } from '../../src/store/sweep.js';
import { busyboxStore, writeTree, BASE_REF } from '../build/fixture.js';

interface Live {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function start(args: string[]): Live {
  const child = spawn(kilnBin, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.resume();
  const exited = once(child, 'close').then(([code]) => code as number | null);
  return { child, stderr: () => err, exited };
}

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A live process that is not kiln, standing in for one (its identity is what the store records). */
function stranger(): { pid: number; identity: string; stop: () => Promise<void> } {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  const identity = processIdentity(child.pid!)!;
  const closed = once(child, 'close');
  return { pid: child.pid!, identity, stop: async () => void (child.kill('SIGKILL'), await closed) };
}

test('prune waits for another kiln using the store, then prunes', async () => {
  const root = join(await tempDir(), 'store');
  assert.equal((await runKiln(['images', '--root', root])).code, 0);
  const user = stranger();
  await writeFile(join(root, 'users', user.identity), '');
  const prune = start(['prune', '--root', root]);
  await until('the wait message', () => prune.stderr().includes('waiting for 1 other kiln process'));
  assert.match(prune.stderr(), new RegExp(`\\(pid ${user.pid}\\)`));
  await sleep(300);
  assert.equal(prune.child.exitCode, null, 'prune must not go on while the store is in use');
  await user.stop();
  assert.equal(await prune.exited, 0, prune.stderr());
  assert.deepEqual(await readdir(join(root, 'users')), [], 'the dead user and the prune leave no user file');
});

test('a kiln command started during a prune waits for it; a second prune is refused', async () => {
  const root = join(await tempDir(), 'store');
  assert.equal((await runKiln(['images', '--root', root])).code, 0);
  const pruner = stranger();
  await mkdir(join(root, 'prune.lock'));
  await writeFile(join(root, 'prune.lock', 'owner'), pruner.identity);
  const images = start(['images', '--root', root]);
  await until('the wait message', () => images.stderr().includes(`waiting for kiln prune (pid ${pruner.pid}) to finish`));
  const second = await runKiln(['prune', '--root', root]);
  assert.notEqual(second.code, 0);
  assert.match(second.stderr, new RegExp(`another kiln prune \\(pid ${pruner.pid}\\) is running on this store`));
  assert.equal(images.child.exitCode, null);
  await pruner.stop();
  assert.equal(await images.exited, 0, images.stderr());
});

test('locks of killed processes do not count: a dead pruner and dead users are passed over', async () => {
  const root = join(await tempDir(), 'store');
  assert.equal((await runKiln(['images', '--root', root])).code, 0);
  const gone = stranger();
  const identity = gone.identity;
  await gone.stop();
  await mkdir(join(root, 'prune.lock'));
  await writeFile(join(root, 'prune.lock', 'owner'), identity);
  await writeFile(join(root, 'users', identity), '');
  const images = await runKiln(['images', '--root', root], { timeoutMs: 10_000 });
  assert.equal(images.code, 0, images.stderr);
  assert.doesNotMatch(images.stderr, /waiting/);
  const prune = await runKiln(['prune', '--root', root], { timeoutMs: 10_000 });
  assert.equal(prune.code, 0, prune.stderr);
  assert.doesNotMatch(prune.stderr, /waiting/);
});

test('prune --all during a build waits for it: the build succeeds and the store stays whole', async () => {
  const root = await busyboxStore();
  const ctx = await tempDir('kiln-prune-ctx-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nRUN echo started && sleep 1.5 && echo one > /one\nRUN echo two > /two\n` });
  const build = start(['build', '--root', root, '--progress', 'plain', '-t', 'pruned:during', ctx]);
  await until('the RUN step to start', () => build.stderr().includes('started'));
  const prune = start(['prune', '--all', '--root', root]);
  await until('prune to wait', () => prune.stderr().includes('waiting for 1 other kiln process'));
  assert.equal(await build.exited, 0, build.stderr());
  assert.equal(await prune.exited, 0, prune.stderr());
  const verify = await runKiln(['store', 'verify', '--root', root]);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  const out = join(await tempDir(), 'rootfs');
  const exp = await runKiln(['export', '--root', root, 'pruned:during', '-o', `type=local,dest=${out}`]);
  assert.equal(exp.code, 0, exp.stderr);
  assert.deepEqual((await readdir(out)).filter((n) => n === 'one' || n === 'two').sort(), ['one', 'two']);
});
