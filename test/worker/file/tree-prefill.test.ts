// A rebuild whose context changed takes every entry's metadata from kiln-treestat's walk (the
// one that found the change) instead of an lstat each: the view answers from it without the
// disk, and the content key and copy are exactly those of a walk through Node.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { link, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileOp } from '../../../src/graph/ops.js';
import type { ResolvedInput } from '../../../src/worker/types.js';
import { RootfsView, type ViewEntry } from '../../../src/store/rootfs-view.js';
import { LISTING_START, TREESTAT_FORMAT, parseListing } from '../../../src/worker/file/tree-memo.js';
import { fileOpContentKey, listFileOpContent } from '../../../src/worker/file/index.js';
import { tempDir } from '../../helpers/tmp.js';
import { repoRoot } from '../../helpers/paths.js';
import { openTestStore, writeTree, copyAction, fileOp, testCtx } from './helpers.js';

const treestat = join(repoRoot, 'native', 'build', 'kiln-treestat');

/** Names that sort differently bytewise (the walker) and by UTF-16 units (Node): U+FB01, U+1F600. */
async function makeContext(): Promise<string> {
  const dir = await tempDir('kiln-prefill-');
  const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`src/gen/d${i % 7}/g${i}.txt`, `${i}\n`]));
  await writeTree(dir, {
    'src/main.ts': 'main',
    'src/\uFB01.txt': 'fi',
    'src/\u{1F600}.txt': 'smile',
    'src/link': '->main.ts',
    'src/empty/': { dir: true },
    'src/node_modules/dep.js': 'dep',
    ...many,
  });
  await link(join(dir, 'src', 'main.ts'), join(dir, 'src', 'main-again.ts'));
  return dir;
}

function walkAll(view: RootfsView, start: ViewEntry): Array<[string, string, number, number, number, number, number, number, number]> {
  const out: Array<[string, string, number, number, number, number, number, number, number]> = [];
  const visit = (e: ViewEntry) => {
    const s = e.stats;
    out.push([e.path, e.type, s.mode, s.size, s.mtimeMs, s.ctimeMs, s.ino, s.nlink, s.dev]);
    if (e.type === 'dir') for (const c of view.readdirSync(e)) visit(c);
  };
  visit(start);
  return out;
}

/**
 * src/ of a fresh context walked through Node, and a second view of it filled from the walker
 * (skipping `skip`, folders below src/).
 */
async function bothWays(skip: string[]) {
  const dir = await makeContext();
  const viaNode = new RootfsView([dir]);
  const expected = walkAll(viaNode, (await viaNode.locate('src', true)).entry!);
  const view = new RootfsView([dir]);
  const src = (await view.locate('src', true)).entry!;
  const out = execFileSync(treestat, [src.host, ...skip.flatMap((x) => ['-x', x])]);
  assert.equal(out.readUInt32LE(0), TREESTAT_FORMAT, 'the walker built from this checkout');
  const walked = parseListing(out.subarray(LISTING_START), 1);
  assert.ok(walked, 'the walker\'s output parses');
  view.prefill(src, walked[0]!, skip);
  return { dir, expected, view, src, walked: walked[0]! };
}

test('a view filled from kiln-treestat answers as lstat would, without the disk', async () => {
  const { dir, expected, view, src } = await bothWays([]);
  await rm(join(dir, 'src'), { recursive: true });
  assert.deepEqual(walkAll(view, src), expected);
});

test('a folder the walk skipped is listed from the disk; the rest still from the walk', async () => {
  const { expected, view, src, walked } = await bothWays(['node_modules']);
  assert.ok(!walked.some((w) => w.rel.startsWith('node_modules')));
  assert.deepEqual(walkAll(view, src), expected);
});

test('after a change, the key and listing of a remembered COPY are those of a store that never saw the context', async () => {
  const dir = await makeContext();
  const inputs: ResolvedInput[] = [{ kind: 'state', layers: [] }, { kind: 'context', dir, excludePatterns: ['src/node_modules'] }];
  const op: FileOp = fileOp(copyAction({ src: ['src'], dest: '/app/' }));
  const store = await openTestStore();
  // Remembered only once the tree is older than the timestamps' granularity.
  await new Promise((r) => setTimeout(r, 2100));
  await fileOpContentKey(op, inputs, testCtx(store));
  assert.ok(execFileSync('ls', [store.path('filehash')], { encoding: 'utf8' }).includes('tree-'), 'the tree is remembered');

  await writeFile(join(dir, 'src', 'gen', 'd3', 'g3.txt'), 'changed\n');
  // One view per input for the step, as the solver gives it.
  const ctx = { ...testCtx(store), stepMemo: new WeakMap<object, unknown>() };
  const key = await fileOpContentKey(op, inputs, ctx);
  const listed = await listFileOpContent(op, inputs, ctx);

  const fresh = testCtx(await openTestStore());
  assert.equal(key, await fileOpContentKey(op, inputs, fresh));
  assert.deepEqual(listed, await listFileOpContent(op, inputs, testCtx(fresh.store)));

  // The step's view answered from the walk: it lists the tree with the files gone. (src/
  // itself, whose node_modules the walk skipped, is listed from the disk.)
  const view = (ctx.stepMemo.get(inputs[1]!) as { view: RootfsView }).view;
  const gen = (await view.locate('src/gen', true)).entry!;
  const before = walkAll(view, gen);
  await rm(join(dir, 'src', 'gen'), { recursive: true });
  assert.deepEqual(walkAll(view, gen), before);
  assert.ok(before.length > 300);
});
