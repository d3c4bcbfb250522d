// fileOpContentKey: exactly the selected files' paths, types, modes, owners, link targets and
// contents count; mtimes and ignored or unselected files never do. Unchanged files are not
// read again (the persistent per-context table answers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, chmod, utimes, symlink, rm, readFile, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { FileOp } from '../../../src/graph/ops.js';
import type { ResolvedInput } from '../../../src/worker/types.js';
import { fileOpContentKey, listFileOpContent } from '../../../src/worker/file/index.js';
import { tempDir } from '../../helpers/tmp.js';
import { runProgram } from '../../helpers/kiln.js';
import { repoRoot } from '../../helpers/paths.js';
import { openTestStore, writeTree, copyAction, fileOp, testCtx, makeSnapshot } from './helpers.js';

const store = await openTestStore();
const ctx = testCtx(store);

async function context(ignore: string[] = []): Promise<{ dir: string; inputs: ResolvedInput[] }> {
  const dir = await tempDir('kiln-keyctx-');
  await writeTree(dir, { 'app/': { dir: true }, 'app/main.ts': 'main', 'app/util.ts': 'util', 'app/debug.log': 'log', 'other.txt': 'o' });
  return { dir, inputs: [{ kind: 'state', layers: [] }, { kind: 'context', dir, excludePatterns: ignore }] };
}

const copyApp: FileOp = fileOp(copyAction({ src: ['app'], dest: '/app/' }));

test('same content with different mtimes gives the same key', async () => {
  const a = await context();
  const b = await context();
  await utimes(join(b.dir, 'app', 'main.ts'), 123456, 123456);
  await utimes(join(b.dir, 'app'), 99, 99);
  assert.equal(await fileOpContentKey(copyApp, a.inputs, ctx), await fileOpContentKey(copyApp, b.inputs, ctx));
});

test('a mode change, an added file, a content change or a new link target each change the key', async () => {
  const c = await context();
  const k0 = await fileOpContentKey(copyApp, c.inputs, ctx);
  await chmod(join(c.dir, 'app', 'main.ts'), 0o755);
  const k1 = await fileOpContentKey(copyApp, c.inputs, ctx);
  assert.notEqual(k1, k0);
  await writeFile(join(c.dir, 'app', 'new.ts'), 'new');
  const k2 = await fileOpContentKey(copyApp, c.inputs, ctx);
  assert.notEqual(k2, k1);
  await writeFile(join(c.dir, 'app', 'util.ts'), 'UTIL');
  const k3 = await fileOpContentKey(copyApp, c.inputs, ctx);
  assert.notEqual(k3, k2);
  await symlink('main.ts', join(c.dir, 'app', 'ln'));
  const k4 = await fileOpContentKey(copyApp, c.inputs, ctx);
  await rm(join(c.dir, 'app', 'ln'));
  await symlink('util.ts', join(c.dir, 'app', 'ln'));
  const k5 = await fileOpContentKey(copyApp, c.inputs, ctx);
  assert.notEqual(k5, k4);
  // Back to the same content: the same key again.
  await rm(join(c.dir, 'app', 'ln'));
  await rm(join(c.dir, 'app', 'new.ts'));
  await writeFile(join(c.dir, 'app', 'util.ts'), 'util');
  await chmod(join(c.dir, 'app', 'main.ts'), 0o644);
  assert.equal(await fileOpContentKey(copyApp, c.inputs, ctx), k0);
});

test('ignored, excluded and unselected files do not count', async () => {
  const c = await context(['**/*.log']);
  const k0 = await fileOpContentKey(copyApp, c.inputs, ctx);
  await writeFile(join(c.dir, 'app', 'debug.log'), 'more log');
  await writeFile(join(c.dir, 'other.txt'), 'changed, but not copied');
  assert.equal(await fileOpContentKey(copyApp, c.inputs, ctx), k0);

  const withExclude = fileOp(copyAction({ src: ['app'], dest: '/app/', exclude: ['util.ts'] }));
  const e0 = await fileOpContentKey(withExclude, c.inputs, ctx);
  await writeFile(join(c.dir, 'app', 'util.ts'), 'changed but excluded');
  assert.equal(await fileOpContentKey(withExclude, c.inputs, ctx), e0);
});

test('the listing names every selected file with its metadata', async () => {
  const c = await context(['**/*.log']);
  const list = await listFileOpContent(copyApp, c.inputs, ctx);
  assert.deepEqual(list.map((e) => [e.path, e.type, e.mode.toString(8)]), [
    ['app', 'dir', '755'],
    ['app/main.ts', 'file', '644'],
    ['app/util.ts', 'file', '644'],
  ]);
  assert.match(list[1]!.digest ?? '', /^sha256:[0-9a-f]{64}$/);
});

test('digests of unchanged context files are kept in the store and reused by the next process', async () => {
  const c = await context();
  await fileOpContentKey(copyApp, c.inputs, ctx);
  const table = join(store.path('filehash'), `${createHash('sha256').update(c.dir).digest('hex')}.json`);
  const body = JSON.parse(await readFile(table, 'utf8')) as { files: Record<string, [number, number, number, number, string]> };
  assert.ok(body.files['app/main.ts'], 'the digest table names the file');
  // Plant a digest the file cannot have: a fresh process that reports it has used the table
  // instead of reading the (unchanged) file.
  const fake = `sha256:${'0'.repeat(64)}`;
  body.files['app/main.ts']![4] = fake;
  await writeFile(table, JSON.stringify(body));
  const script = `
    import { Store } from ${JSON.stringify(join(repoRoot, 'dist/src/store/store.js'))};
    import { listFileOpContent } from ${JSON.stringify(join(repoRoot, 'dist/src/worker/file/index.js'))};
    const store = await Store.open(${JSON.stringify(store.root)});
    const ctx = { store, secrets: new Map(), sshAgents: new Map(), limits: {}, allowInsecure: false, signal: new AbortController().signal, onOutput() {} };
    const list = await listFileOpContent(${JSON.stringify(copyApp)}, ${JSON.stringify(c.inputs)}, ctx);
    console.log(JSON.stringify(list.map((e) => [e.path, e.digest ?? null])));
  `;
  const r = await runProgram(process.execPath, ['--input-type=module', '-e', script]);
  assert.equal(r.code, 0, r.stderr);
  const got = new Map(JSON.parse(r.stdout) as Array<[string, string | null]>);
  assert.equal(got.get('app/main.ts'), fake);
  // After a real change the file is read again.
  await writeFile(join(c.dir, 'app', 'main.ts'), 'MAIN');
  const r2 = await runProgram(process.execPath, ['--input-type=module', '-e', script]);
  const got2 = new Map(JSON.parse(r2.stdout) as Array<[string, string | null]>);
  assert.match(got2.get('app/main.ts') ?? '', /^sha256:(?!0{64})/);
});

test('a rebuild appends the rows of the files it hashed: the table is not rewritten, the last row of a file wins, a cut row is skipped', async () => {
  const c = await context();
  await fileOpContentKey(copyApp, c.inputs, ctx);
  const table = join(store.path('filehash'), `${createHash('sha256').update(c.dir).digest('hex')}.json`);
  const first = await readFile(table, 'utf8');
  assert.equal(first.split('\n').filter(Boolean).length, 1, 'a new table is written whole');
  const script = `
    import { Store } from ${JSON.stringify(join(repoRoot, 'dist/src/store/store.js'))};
    import { listFileOpContent } from ${JSON.stringify(join(repoRoot, 'dist/src/worker/file/index.js'))};
    const store = await Store.open(${JSON.stringify(store.root)});
    const ctx = { store, secrets: new Map(), sshAgents: new Map(), limits: {}, allowInsecure: false, signal: new AbortController().signal, onOutput() {} };
    const list = await listFileOpContent(${JSON.stringify(copyApp)}, ${JSON.stringify(c.inputs)}, ctx);
    console.log(JSON.stringify(list.map((e) => [e.path, e.digest ?? null])));
  `;
  const digests = async () => {
    const r = await runProgram(process.execPath, ['--input-type=module', '-e', script]);
    assert.equal(r.code, 0, r.stderr);
    return new Map(JSON.parse(r.stdout) as Array<[string, string | null]>);
  };
  const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

  await writeFile(join(c.dir, 'app', 'main.ts'), 'MAIN2');
  assert.equal((await digests()).get('app/main.ts'), sha('MAIN2'));
  const second = await readFile(table, 'utf8');
  assert.ok(second.startsWith(first), 'the table object is left as it was');
  const added = second.slice(first.length).split('\n').filter(Boolean).map((l) => JSON.parse(l) as [string, ...unknown[]]);
  assert.deepEqual(added.map((r) => [r[0], r[5]]), [['app/main.ts', sha('MAIN2')]]);

  // A later row for the same file and stat wins; a row cut short by a crash is passed over.
  const planted = [...added[0]!];
  planted[5] = `sha256:${'1'.repeat(64)}`;
  await writeFile(table, `${second}${JSON.stringify(planted)}\n["app/util.ts", 4, 12`);
  const got = await digests();
  assert.equal(got.get('app/main.ts'), planted[5]);
  assert.equal(got.get('app/util.ts'), sha('util'));
});

test('keys of COPY --from a stage count owners', async () => {
  const s1 = await makeSnapshot(store, { 'out/': { dir: true }, 'out/bin': { content: 'x', uid: 1, gid: 1 } });
  const s2 = await makeSnapshot(store, { 'out/': { dir: true }, 'out/bin': { content: 'x', uid: 2, gid: 2 } });
  const op = fileOp(copyAction({ src: ['/out'], dest: '/o/' }));
  const k1 = await fileOpContentKey(op, [{ kind: 'state', layers: [] }, { kind: 'state', layers: [s1] }], ctx);
  const k2 = await fileOpContentKey(op, [{ kind: 'state', layers: [] }, { kind: 'state', layers: [s2] }], ctx);
  assert.notEqual(k1, k2);
});

test('heredoc content counts; a missing source fails while computing the key', async () => {
  const c = await context();
  const mk = (content: string): FileOp => fileOp({ action: 'mkfile', path: '/f', content, mode: 0o644 });
  assert.notEqual(await fileOpContentKey(mk('a'), c.inputs, ctx), await fileOpContentKey(mk('b'), c.inputs, ctx));
  await assert.rejects(fileOpContentKey(fileOp(copyAction({ src: ['nope'], dest: '/x' })), c.inputs, ctx), /"nope" not found/);
});

test('the content key JSON is canonicalJson of the sources, byte for byte, and the key its sha256 (keys stay valid across versions)', async () => {
  const { contentKeyJson, contentKeyDigest } = await import('../../../src/worker/file/index.js');
  const { canonicalJson, sha256 } = await import('../../../src/util/digest.js');
  const sources = [
    {
      action: 0,
      kind: 'copy' as const,
      files: [
        { path: '', type: 'dir' as const, mode: 0o755, uid: 0, gid: 0 },
        { path: 'a "quoted"\\name\n', type: 'file' as const, mode: 0o4755, uid: 1000, gid: 3_000_000, digest: `sha256:${'a'.repeat(64)}` as const },
        { path: 'ünï/✓', type: 'symlink' as const, mode: 0o777, uid: 0, gid: 0, linkTarget: '../x "y"' },
        { path: 'dev', type: 'other' as const, mode: 0o20644, uid: 0, gid: 0 },
      ],
    },
    { action: 1, kind: 'mkfile' as const, content: `sha256:${'b'.repeat(64)}` as const },
    { action: 2, kind: 'mkdir' as const },
    { action: 3, kind: 'copy' as const, files: [] },
  ];
  assert.equal(contentKeyJson(sources), canonicalJson({ version: 1, sources }));
  assert.equal(contentKeyJson([]), canonicalJson({ version: 1, sources: [] }));
  assert.equal(contentKeyDigest(sources), sha256(canonicalJson({ version: 1, sources })));
  // Long enough to be hashed in several pieces, with a lone surrogate in a name.
  const many = [{ action: 0, kind: 'copy' as const, files: Array.from({ length: 3000 }, (_, i) => ({ path: `d/f${i}${i === 7 ? '\ud800' : ''}`, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, digest: `sha256:${'c'.repeat(64)}` as const })) }];
  assert.equal(contentKeyDigest(many), sha256(canonicalJson({ version: 1, sources: many })));
});

test("digests of a stage's files are kept in its layer's table and reused by the next process", async () => {
  const snap = await makeSnapshot(store, { 'out/': { dir: true }, 'out/a': 'a', 'out/b': 'b' });
  const op = fileOp(copyAction({ src: ['/out'], dest: '/o/' }));
  const inputs: ResolvedInput[] = [{ kind: 'state', layers: [] }, { kind: 'state', layers: [snap] }];
  const before = new Set(await readdir(store.path('filehash')).catch(() => []));
  await fileOpContentKey(op, inputs, ctx);
  const made = (await readdir(store.path('filehash'))).filter((n) => !before.has(n));
  assert.equal(made.length, 1, 'one table, for the layer');
  const table = store.path('filehash', made[0]!);
  const body = JSON.parse(await readFile(table, 'utf8')) as { files: Record<string, [number, number, number, number, string]> };
  const key = Object.keys(body.files).find((k) => k.endsWith('out/a'))!;
  const fake = `sha256:${'0'.repeat(64)}`;
  body.files[key]![4] = fake;
  await writeFile(table, JSON.stringify(body));
  const script = `
    import { Store } from ${JSON.stringify(join(repoRoot, 'dist/src/store/store.js'))};
    import { listFileOpContent } from ${JSON.stringify(join(repoRoot, 'dist/src/worker/file/index.js'))};
    const store = await Store.open(${JSON.stringify(store.root)});
    const ctx = { store, secrets: new Map(), sshAgents: new Map(), limits: {}, allowInsecure: false, signal: new AbortController().signal, onOutput() {} };
    const list = await listFileOpContent(${JSON.stringify(op)}, ${JSON.stringify(inputs)}, ctx);
    console.log(JSON.stringify(list.map((e) => [e.path, e.digest ?? null])));
  `;
  const r = await runProgram(process.execPath, ['--input-type=module', '-e', script]);
  assert.equal(r.code, 0, r.stderr);
  const got = new Map(JSON.parse(r.stdout) as Array<[string, string | null]>);
  assert.equal(got.get('out/a'), fake, 'the table answered, not the file');
  assert.equal(got.get('out/b'), `sha256:${createHash('sha256').update('b').digest('hex')}`);
});
