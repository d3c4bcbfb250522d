// Scheduling and cache controls through the CLI: parallel stages, --jobs 1, identical ops once,
// --no-cache, --no-cache-filter, the persistent context file-hash table, and the remembered
// key of a COPY whose source trees did not change (tree-memo.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, writeFile, readdir, rm, utimes, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { tempDir } from '../helpers/tmp.js';
import { busyboxStore, writeTree, buildJson, ranSteps, cachedSteps, assertOk, readIid, BASE_REF, type BuildRun } from './fixture.js';
import type { StepEvent } from '../../src/solver/events.js';

// At the top level, not in before(): tempDir's cleanup would run when the hook ends.
const root = await busyboxStore();

const TWO_STAGES = `FROM ${BASE_REF} AS left
RUN sleep 1 && echo left > /left
FROM ${BASE_REF} AS right
RUN sleep 1 && echo right > /right
FROM ${BASE_REF}
COPY --from=left /left /left
COPY --from=right /right /right
`;

async function context(files: Record<string, string>): Promise<string> {
  const ctx = await tempDir('kiln-flags-');
  await writeTree(ctx, files);
  return ctx;
}

function stepTimes(run: BuildRun, match: string): { running: number; done: number } {
  const evs = run.steps.filter((s) => s.name.includes(match));
  const running = evs.find((s) => s.state === 'running');
  const done = evs.find((s) => s.state === 'done');
  assert.ok(running && done, `no running/done events for ${match}`);
  return { running: running.at, done: done.at };
}

test('two stages that share nothing run side by side; --jobs 1 runs one step at a time', async () => {
  const ctx = await context({ Dockerfile: TWO_STAGES });
  const par = await buildJson(root, ctx, ['--jobs', '2']);
  assertOk(par);
  const left = stepTimes(par, 'echo left');
  const right = stepTimes(par, 'echo right');
  assert.ok(left.running < right.done && right.running < left.done, `not overlapping: ${JSON.stringify({ left, right })}`);

  const serial = await buildJson(root, ctx, ['--jobs', '1', '--no-cache']);
  assertOk(serial);
  const spans = serial.steps
    .filter((s) => s.state === 'running' && !s.name.startsWith('[internal]'))
    .map((s) => ({ name: s.name, ...stepTimes(serial, s.name) }))
    .sort((a, b) => a.running - b.running);
  assert.equal(spans.length, 4);
  for (let i = 1; i < spans.length; i++) {
    assert.ok(spans[i]!.running >= spans[i - 1]!.done, `${spans[i]!.name} started before ${spans[i - 1]!.name} ended`);
  }
});

test('identical ops (same cache key) run once per build', async () => {
  const ctx = await context({
    Dockerfile: `FROM ${BASE_REF} AS one\nRUN echo same > /same.txt\nFROM ${BASE_REF} AS two\nRUN echo same > /same.txt\nFROM ${BASE_REF}\nCOPY --from=one /same.txt /1\nCOPY --from=two /same.txt /2\n`,
  });
  const r = await buildJson(root, ctx);
  assertOk(r);
  const runs = r.steps.filter((s) => s.name.includes('echo same >'));
  const final = (stage: string): StepEvent['state'] | undefined => runs.filter((s) => s.name.startsWith(`[${stage} `)).at(-1)?.state;
  assert.deepEqual([final('one'), final('two')].sort(), ['cached', 'done']);
  assert.equal(runs.filter((s) => s.state === 'running').length, 1, 'the RUN started once');
});

test('--no-cache runs every step; --no-cache-filter only the named stages, and content-keyed COPY --from stays cached', async () => {
  const ctx = await context({ Dockerfile: TWO_STAGES.replaceAll('sleep 1 && ', '') });
  const iid = join(await tempDir('kiln-iid-'), 'iid');
  assertOk(await buildJson(root, ctx, ['--iidfile', iid]));
  const first = await readIid(iid);

  const all = await buildJson(root, ctx, ['--no-cache']);
  assertOk(all);
  assert.equal(ranSteps(all).length, 4);
  assert.deepEqual(cachedSteps(all), []);

  const filtered = await buildJson(root, ctx, ['--no-cache-filter', 'right', '--iidfile', iid]);
  assertOk(filtered);
  assert.deepEqual(ranSteps(filtered), ['RUN echo right > /right']);
  assert.deepEqual(cachedSteps(filtered), ['COPY --from=left /left /left', 'COPY --from=right /right /right', 'RUN echo left > /left']);
  assert.equal(await readIid(iid), first, 'the re-run stage gave the same files, so the same image');

  const both = await buildJson(root, ctx, ['--no-cache-filter', 'left,right']);
  assertOk(both);
  assert.deepEqual(ranSteps(both), ['RUN echo left > /left', 'RUN echo right > /right']);

  const bad = await buildJson(root, ctx, ['--no-cache-filter', 'nosuch']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--no-cache-filter: no stage named "nosuch"/);
});

test('a stage built FROM a re-run stage is re-run too (it may stand on different files)', async () => {
  const ctx = await context({ Dockerfile: `FROM ${BASE_REF} AS base\nRUN echo base > /base\nFROM base\nRUN cat /base > /copy\n` });
  assertOk(await buildJson(root, ctx));
  const r = await buildJson(root, ctx, ['--no-cache-filter', 'base']);
  assertOk(r);
  assert.deepEqual(ranSteps(r), ['RUN cat /base > /copy', 'RUN echo base > /base']);
});

async function treeMemos(store: string): Promise<string[]> {
  return (await readdir(join(store, 'filehash'))).filter((n) => n.startsWith('tree-')).sort();
}

/** A file's row in a digest table: the table object's, or the last row appended for it. */
async function tableRow(table: string, key: string): Promise<unknown[] | undefined> {
  const [head, ...appended] = (await readFile(table, 'utf8')).split('\n').filter(Boolean);
  let row = (JSON.parse(head!) as { files: Record<string, unknown[]> }).files[key];
  for (const line of appended) {
    const [k, ...rest] = JSON.parse(line) as [string, ...unknown[]];
    if (k === key) row = rest;
  }
  return row;
}

/** This test is about the per-file table: no remembered tree key answers before it. */
async function forgetTreeMemos(store: string): Promise<void> {
  for (const n of await treeMemos(store)) await rm(join(store, 'filehash', n));
}

test('context files are hashed once: the persistent table is trusted while size, mtime, ctime and inode match', async () => {
  const ctx = await context({ Dockerfile: `FROM ${BASE_REF}\nCOPY src/ /app/\n`, 'src/keep.txt': 'keep\n', 'src/other.txt': 'other\n' });
  assertOk(await buildJson(root, ctx));
  const table = join(root, 'filehash', `${createHash('sha256').update(ctx).digest('hex')}.json`);
  const body = JSON.parse(await readFile(table, 'utf8')) as { files: Record<string, [number, number, number, number, string]> };
  const row = body.files['src/keep.txt'];
  assert.ok(row, `no row for src/keep.txt in ${Object.keys(body.files).join(', ')}`);
  assert.equal(row[4], `sha256:${createHash('sha256').update('keep\n').digest('hex')}`);

  // A wrong digest for an unchanged file is believed (the file is not read again): the COPY misses.
  row[4] = `sha256:${createHash('sha256').update('not the content').digest('hex')}`;
  await writeFile(table, JSON.stringify(body));
  await forgetTreeMemos(root);
  const trusted = await buildJson(root, ctx);
  assertOk(trusted);
  assert.deepEqual(ranSteps(trusted), ['COPY src/ /app/']);

  // Once the row no longer matches the file's stat, the file is read again: back to the first key.
  row[0] += 1;
  await writeFile(table, JSON.stringify(body));
  await forgetTreeMemos(root);
  const reread = await buildJson(root, ctx);
  assertOk(reread);
  assert.deepEqual(cachedSteps(reread), ['COPY src/ /app/']);
  assert.equal((await tableRow(table, 'src/keep.txt'))?.[4], `sha256:${createHash('sha256').update('keep\n').digest('hex')}`);
});

test('a COPY whose source trees are as they were takes its remembered key; any change under them, or a fresh one, does not', async () => {
  const root = await busyboxStore();
  // Big enough to be remembered (a selection of a few files is cheaper to look at from Node).
  const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`src/gen/g${i}.txt`, `${i}\n`]));
  const ctx = await context({
    Dockerfile: `FROM ${BASE_REF}\nCOPY src/ /app/\nRUN cat /app/keep.txt\n`,
    '.dockerignore': 'src/node_modules\n',
    'src/keep.txt': 'keep\n',
    'src/lib/other.txt': 'other\n',
    'src/node_modules/dep.js': 'dep\n',
    ...many,
  });
  // A tree changed within the last two seconds is not remembered (timestamps are coarse).
  assertOk(await buildJson(root, ctx));
  assert.deepEqual(await treeMemos(root), []);
  await sleep(2100);
  const first = await buildJson(root, ctx);
  assertOk(first);
  assert.deepEqual(cachedSteps(first), ['COPY src/ /app/', 'RUN cat /app/keep.txt']);
  const [memoName] = await treeMemos(root);
  assert.ok(memoName, 'no tree memo after a build of a settled context');
  const memoFile = join(root, 'filehash', memoName);
  const memo = JSON.parse(await readFile(memoFile, 'utf8')) as { key: string; pruned: string[][] };
  // The ignored folder is skipped whole, by the selection and by the quick check.
  assert.deepEqual(memo.pruned, [['node_modules']]);

  // The per-file table now lies about keep.txt; a memo hit never asks it, so the COPY stays
  // cached, even with a file added inside the ignored folder.
  const table = join(root, 'filehash', `${createHash('sha256').update(ctx).digest('hex')}.json`);
  const truth = await readFile(table, 'utf8');
  const body = JSON.parse(truth) as { files: Record<string, [number, number, number, number, string]> };
  body.files['src/keep.txt']![4] = `sha256:${createHash('sha256').update('a lie').digest('hex')}`;
  await writeFile(table, JSON.stringify(body));
  await writeFile(join(ctx, 'src', 'node_modules', 'more.js'), 'more\n');
  const hit = await buildJson(root, ctx);
  assertOk(hit);
  assert.deepEqual(cachedSteps(hit), ['COPY src/ /app/', 'RUN cat /app/keep.txt']);
  await writeFile(table, truth);

  // Same size, mtime put back: only the ctime tells. The COPY runs, and the tree just changed
  // is not remembered.
  const other = join(ctx, 'src', 'lib', 'other.txt');
  const before = await stat(other);
  await writeFile(other, 'OTHER\n');
  await utimes(other, before.atime, before.mtime);
  const memoBefore = await readFile(memoFile, 'utf8');
  const changed = await buildJson(root, ctx);
  assertOk(changed);
  assert.deepEqual(ranSteps(changed), ['COPY src/ /app/', 'RUN cat /app/keep.txt']);
  assert.equal(await readFile(memoFile, 'utf8'), memoBefore);

  // A file added to a selected folder: the COPY runs again.
  await writeFile(join(ctx, 'src', 'lib', 'new.txt'), 'new\n');
  const added = await buildJson(root, ctx);
  assertOk(added);
  assert.deepEqual(ranSteps(added), ['COPY src/ /app/', 'RUN cat /app/keep.txt']);
});

test('a small COPY selection is never remembered: looking at a few files costs less than a walk', async () => {
  const root = await busyboxStore();
  const ctx = await context({ Dockerfile: `FROM ${BASE_REF}\nCOPY src/ /app/\n`, 'src/a.txt': 'a\n', 'src/b.txt': 'b\n' });
  await sleep(2100);
  assertOk(await buildJson(root, ctx));
  assert.deepEqual(await treeMemos(root), []);
});

test('without the tree walker, rebuilds take the full path: cached when nothing changed, re-run when something did', async () => {
  const root = await busyboxStore();
  const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`src/g${i}.txt`, `${i}\n`]));
  const ctx = await context({ Dockerfile: `FROM ${BASE_REF}\nCOPY src/ /app/\n`, ...many });
  const missing = { env: { KILN_TREESTAT: join(ctx, 'no-such-walker') } };
  await sleep(2100);
  assertOk(await buildJson(root, ctx, [], missing));
  assert.deepEqual(await treeMemos(root), [], 'a memo without a walk');
  const again = await buildJson(root, ctx, [], missing);
  assertOk(again);
  assert.deepEqual(cachedSteps(again), ['COPY src/ /app/']);
  // A memo made with the walker, then the walker gone: still the full path, still right.
  assertOk(await buildJson(root, ctx));
  assert.equal((await treeMemos(root)).length, 1);
  await writeFile(join(ctx, 'src', 'g7.txt'), 'changed\n');
  const changed = await buildJson(root, ctx, [], missing);
  assertOk(changed);
  assert.deepEqual(ranSteps(changed), ['COPY src/ /app/']);
});

test('a cache hit counts as a use of its snapshot (a COPY from the context or from a stage): the ones prune would remove last', async () => {
  // mid's COPYs are in no image: only their cache hits say they are still in use.
  const ctx = await context({
    Dockerfile: `FROM ${BASE_REF} AS src\nRUN echo made > /made\nFROM ${BASE_REF} AS mid\nCOPY hit.txt /hit.txt\nCOPY --from=src /made /made\nFROM ${BASE_REF}\nCOPY --from=mid /hit.txt /made /out/\n`,
    'hit.txt': 'hit\n',
  });
  const before = new Set(await readdir(join(root, 'snapshots')));
  assertOk(await buildJson(root, ctx));
  const made = (await readdir(join(root, 'snapshots'))).filter((s) => !before.has(s));
  const sources = await Promise.all(made.map(async (s) => (JSON.parse(await readFile(join(root, 'snapshots', s, 'meta.json'), 'utf8')) as { source: string }).source));
  const copies = made.filter((_, i) => sources[i] === 'file');
  assert.equal(copies.length, 3, `the three COPYs' snapshots: ${made.join(', ')} (${sources.join(', ')})`);
  const markers = copies.map((s) => join(root, 'snapshots', s, 'used'));
  for (const m of markers) {
    await writeFile(m, '');
    await utimes(m, 1_000_000, 1_000_000);
  }
  const started = Date.now();
  const hit = await buildJson(root, ctx);
  assertOk(hit);
  assert.deepEqual(ranSteps(hit), []);
  const fresh = async () => (await Promise.all(markers.map(async (m) => (await stat(m)).mtimeMs >= started - 1000))).filter(Boolean).length;
  assert.equal(await fresh(), 3, 'every COPY marked its snapshot used');
  // Without a marker (a store from before it existed), a hit makes one.
  for (const m of markers) await rm(m);
  assertOk(await buildJson(root, ctx));
  assert.equal(await fresh(), 3);
});
