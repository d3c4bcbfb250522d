// COPY/ADD cases as BuildKit applies them, run through runFile on real snapshots; every case
// compares the committed diff folder exactly (paths, types, modes, owners, contents, links, mtimes).

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { link, mkdir, writeFile, chmod, lutimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../../../src/store/store.js';
import type { FileAction, FileOp } from '../../../src/graph/ops.js';
import type { ResolvedInput } from '../../../src/worker/types.js';
import { tempDir } from '../../helpers/tmp.js';
import { openTestStore, makeSnapshot, writeTree, runAndList, copyAction, fileOp, testCtx, listTree, F, D, L, type Listed, type TreeSpec } from './helpers.js';

const store: Store = await openTestStore();
let base: string;

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nsvc:x:300:50:svc:/srv:/bin/sh\n';
const GROUP = 'root:x:0:\napp:x:1000:\nstaff:x:50:app\n';

before(async () => {
  base = await makeSnapshot(store, {
    'etc/': { dir: true, mode: 0o755, mtime: 1000 },
    'etc/passwd': PASSWD,
    'etc/group': GROUP,
    'app/': { dir: true, mode: 0o750, uid: 5, gid: 5, mtime: 12345 },
    'app/old.txt': 'old',
    'app/olddir/': { dir: true },
    'app/olddir/inner.txt': 'inner',
    'app/oldfile': 'i am a file',
    'tmp/': { dir: true, mode: 0o1777, mtime: 777 },
    'link-etc': '->/etc',
    'escape': '->../../../../../../tmp',
  });
  // The directories' times were changed by writing into them; set them last.
  await lutimes(join(store.snapshotFs(base), 'etc'), 1000, 1000);
  await lutimes(join(store.snapshotFs(base), 'app'), 12345, 12345);
});

interface Case {
  name: string;
  context?: TreeSpec;
  ignore?: string[];
  actions: FileAction[];
  /** No base image (FROM scratch or --link). */
  scratch?: boolean;
  epoch?: number;
  expect?: Record<string, Listed> | null;
  error?: RegExp;
}

const ctxTree: TreeSpec = {
  'a.txt': 'A',
  'b.txt': 'B',
  'c.md': 'C',
  'src/': { dir: true },
  'src/x.txt': 'X',
  'src/sub/': { dir: true },
  'src/sub/y.txt': 'Y',
  'src/readme.md': 'R',
  'src/empty/': { dir: true },
  'src/ln': '->x.txt',
  'to-a': '->a.txt',
};

const etc = D('0755', '0:0', 1000);
const app = D('0750', '5:5', 12345);

const cases: Case[] = [
  { name: 'file to file', actions: [copyAction({ src: ['a.txt'], dest: '/b.txt' })], expect: { 'b.txt': F('A') } },
  { name: 'file into dir/ (created)', actions: [copyAction({ src: ['a.txt'], dest: '/new/' })], expect: { new: D(), 'new/a.txt': F('A') } },
  {
    name: 'file into an existing dir named without a slash; the dir keeps its metadata',
    actions: [copyAction({ src: ['a.txt'], dest: '/app' })],
    expect: { app, 'app/a.txt': F('A') },
  },
  {
    name: "a directory's contents, not the directory",
    actions: [copyAction({ src: ['src'], dest: '/dst' })],
    expect: {
      dst: D(), 'dst/empty': D(), 'dst/ln': L('x.txt'), 'dst/readme.md': F('R'), 'dst/sub': D(), 'dst/sub/y.txt': F('Y'), 'dst/x.txt': F('X'),
    },
  },
  {
    name: 'several sources into a dir/',
    actions: [copyAction({ src: ['a.txt', 'b.txt'], dest: '/d/' })],
    expect: { d: D(), 'd/a.txt': F('A'), 'd/b.txt': F('B') },
  },
  {
    name: 'several sources into an existing dir without a slash',
    actions: [copyAction({ src: ['a.txt', 'b.txt'], dest: '/app' })],
    expect: { app, 'app/a.txt': F('A'), 'app/b.txt': F('B') },
  },
  // BuildKit copies the sources one after another: without a slash, the last file wins...
  { name: 'several files to a new name without a slash: the last one wins', actions: [copyAction({ src: ['a.txt', 'b.txt'], dest: '/d' })], expect: { d: F('B') } },
  { name: 'a wildcard matching several files to a new name', actions: [copyAction({ src: ['[ab].txt'], dest: '/d' })], expect: { d: F('B') } },
  // ...folders merge, and a file after a folder goes into it...
  {
    name: 'several folders to a new name without a slash merge',
    context: { 'd1/': { dir: true }, 'd1/x': 'X1', 'd1/only1': 'O', 'd2/': { dir: true }, 'd2/x': 'X2' },
    actions: [copyAction({ src: ['d?'], dest: '/m' })],
    expect: { m: D(), 'm/only1': F('O'), 'm/x': F('X2') },
  },
  {
    name: 'a file after a folder goes into the folder it made',
    context: { 'd1/': { dir: true }, 'd1/x': 'X1', 'a.txt': 'A' },
    actions: [copyAction({ src: ['d1', 'a.txt'], dest: '/m' })],
    expect: { m: D(), 'm/a.txt': F('A'), 'm/x': F('X1') },
  },
  // ...and a folder after a file fails, as it does in BuildKit.
  {
    name: 'a folder after a file made the destination fails',
    context: { 'd1/': { dir: true }, 'd1/x': 'X1', 'a.txt': 'A' },
    actions: [copyAction({ src: ['a.txt', 'd1'], dest: '/m' })],
    error: /\/m/,
  },
  { name: 'wildcard', actions: [copyAction({ src: ['*.txt'], dest: '/w/' })], expect: { w: D(), 'w/a.txt': F('A'), 'w/b.txt': F('B') } },
  { name: 'wildcard with one match to a file name', actions: [copyAction({ src: ['[a]?txt'], dest: '/one' })], expect: { one: F('A') } },
  { name: 'wildcard in a middle component', actions: [copyAction({ src: ['s*/*.txt'], dest: '/m/' })], expect: { m: D(), 'm/x.txt': F('X') } },
  // As in BuildKit: an optional file (`COPY requirements.* ./`), not an error; nothing is made.
  { name: 'a wildcard matching nothing copies nothing', actions: [copyAction({ src: ['*.nope'], dest: '/w/' })], expect: null },
  { name: 'a wildcard matching nothing beside a file', actions: [copyAction({ src: ['a.txt', '*.nope'], dest: '/w/' })], expect: { w: D(), 'w/a.txt': F('A') } },
  {
    name: 'a wildcard\'s match that is a link to nothing is an error (BuildKit), not left out',
    context: { 'g/': { dir: true }, 'g/ok.txt': 'O', 'g/dangle': '->missing' },
    actions: [copyAction({ src: ['g/*'], dest: '/g/' })],
    error: /source pattern "g\/\*" matched "g\/dangle", a symbolic link to "missing", which is not found in the build context/,
  },
  {
    name: 'a link to nothing on the way to a wildcard\'s match is passed over, as in BuildKit',
    context: { 'h/': { dir: true }, 'h/sub/': { dir: true }, 'h/sub/f': 'F', 'h/dangle': '->missing' },
    actions: [copyAction({ src: ['h/*/f'], dest: '/h/' })],
    expect: { h: D(), 'h/f': F('F') },
  },
  { name: 'missing source names it', actions: [copyAction({ src: ['missing.txt'], dest: '/x' })], error: /source "missing\.txt" not found in the build context/ },
  { name: 'source escaping the context', actions: [copyAction({ src: ['../etc/passwd'], dest: '/x' })], error: /"\.\.\/etc\/passwd" is outside the build context/ },
  {
    name: 'destination through a symlink resolves inside the image',
    actions: [copyAction({ src: ['a.txt'], dest: '/link-etc/' })],
    expect: { etc, 'etc/a.txt': F('A') },
  },
  {
    name: 'a symlink pointing out of the image stays inside it',
    actions: [copyAction({ src: ['a.txt'], dest: '/escape/' })],
    expect: { tmp: D('1777', '0:0', 777), 'tmp/a.txt': F('A') },
  },
  { name: 'a top-level symlink source is followed', actions: [copyAction({ src: ['to-a'], dest: '/f' })], expect: { f: F('A') } },
  {
    name: 'special bits and modes are kept',
    context: { 'bits/': { dir: true, mode: 0o1777 }, 'bits/suid': { content: 's', mode: 0o4755 }, 'bits/sgid': { content: 'g', mode: 0o2750 } },
    actions: [copyAction({ src: ['.'], dest: '/x/' })],
    expect: { x: D(), 'x/bits': D('1777'), 'x/bits/sgid': F('g', '2750'), 'x/bits/suid': F('s', '4755') },
  },
  {
    name: '--chown by name, looked up in the destination image',
    actions: [copyAction({ src: ['a.txt'], dest: '/o/', chown: { user: 'app', group: 'staff' } })],
    expect: { o: D('0755', '1000:50'), 'o/a.txt': F('A', '0644', '1000:50') },
  },
  {
    name: '--chown by number; the group defaults to the user number',
    actions: [copyAction({ src: ['a.txt'], dest: '/n.txt', chown: { user: '123' } })],
    expect: { 'n.txt': F('A', '0644', '123:123') },
  },
  {
    name: '--chown by name alone: the group is the one the user\'s passwd entry names (BuildKit)',
    actions: [copyAction({ src: ['a.txt'], dest: '/s.txt', chown: { user: 'svc' } })],
    expect: { 's.txt': F('A', '0644', '300:50') },
  },
  {
    name: '--chown=:GROUP: the user is root',
    actions: [copyAction({ src: ['a.txt'], dest: '/g.txt', chown: { user: '', group: 'staff' } })],
    expect: { 'g.txt': F('A', '0644', '0:50') },
  },
  {
    name: '--chown of a user or group the image lacks falls back as in BuildKit: root, the user\'s group',
    actions: [
      copyAction({ src: ['a.txt'], dest: '/n.txt', chown: { user: 'ghost' } }),
      copyAction({ src: ['a.txt'], dest: '/g.txt', chown: { user: 'svc', group: 'nosuchgroup' } }),
      copyAction({ src: ['a.txt'], dest: '/u.txt', chown: { user: 'ghost', group: 'staff' } }),
    ],
    expect: { 'n.txt': F('A', '0644', '0:0'), 'g.txt': F('A', '0644', '300:50'), 'u.txt': F('A', '0644', '0:50') },
  },
  {
    name: '--chown=root:root onto scratch (no /etc/passwd) is root, as in BuildKit',
    scratch: true,
    actions: [copyAction({ src: ['a.txt'], dest: '/r.txt', chown: { user: 'root', group: 'root' } })],
    expect: { 'r.txt': F('A', '0644', '0:0') },
  },
  {
    name: '--chmod octal applies to files and directories',
    actions: [copyAction({ src: ['src/sub'], dest: '/cm', chmod: '0640' })],
    expect: { cm: D('0640'), 'cm/y.txt': F('Y', '0640') },
  },
  {
    name: '--chmod symbolic: X only for directories and executables',
    context: { 'sym/': { dir: true, mode: 0o700 }, 'sym/run': { content: 'r', mode: 0o700 }, 'sym/data': { content: 'd', mode: 0o600 } },
    actions: [copyAction({ src: ['sym'], dest: '/sym', chmod: 'u=rwX,go=rX' })],
    expect: { sym: D('0755'), 'sym/data': F('d', '0644'), 'sym/run': F('r', '0755') },
  },
  {
    name: '--exclude patterns, relative to the copied source',
    actions: [copyAction({ src: ['src'], dest: '/e', exclude: ['*.md', 'sub'] })],
    expect: { e: D(), 'e/empty': D(), 'e/ln': L('x.txt'), 'e/x.txt': F('X') },
  },
  {
    name: '.dockerignore of the context applies (with re-inclusion)',
    ignore: ['src/**/*.txt', '!src/sub/y.txt', 'c.md'],
    actions: [copyAction({ src: ['.'], dest: '/ig/' })],
    expect: {
      ig: D(), 'ig/a.txt': F('A'), 'ig/b.txt': F('B'), 'ig/src': D(), 'ig/src/empty': D(), 'ig/src/ln': L('x.txt'),
      'ig/src/readme.md': F('R'), 'ig/src/sub': D(), 'ig/src/sub/y.txt': F('Y'), 'ig/to-a': L('a.txt'),
    },
  },
  { name: 'an ignored source is missing', ignore: ['a.txt'], actions: [copyAction({ src: ['a.txt'], dest: '/x' })], error: /"a\.txt" not found.*excluded by \.dockerignore/ },
  {
    name: '--parents keeps the path, from the ./ pivot on',
    actions: [copyAction({ src: ['src/sub/y.txt', 'src/./sub/y.txt', 'a.txt'], dest: '/p/', parents: true })],
    expect: { p: D(), 'p/a.txt': F('A'), 'p/src': D(), 'p/src/sub': D(), 'p/src/sub/y.txt': F('Y'), 'p/sub': D(), 'p/sub/y.txt': F('Y') },
  },
  {
    name: '--parents with a wildcard',
    actions: [copyAction({ src: ['src/**/*.txt'], dest: '/pw/', parents: true })],
    expect: { pw: D(), 'pw/src': D(), 'pw/src/sub': D(), 'pw/src/sub/y.txt': F('Y'), 'pw/src/x.txt': F('X') },
  },
  {
    name: '--link: only the files and plain parents, no base',
    scratch: true,
    actions: [copyAction({ src: ['a.txt'], dest: '/app/deep/a.txt', link: true })],
    expect: { app: D(), 'app/deep': D(), 'app/deep/a.txt': F('A') },
  },
  {
    name: '--link on a base: the diff ignores the base (plain parents), names still come from it',
    actions: [copyAction({ src: ['a.txt'], dest: '/app/', link: true, chown: { user: 'app' } })],
    expect: { app: D('0755', '1000:1000'), 'app/a.txt': F('A', '0644', '1000:1000') },
  },
  {
    name: 'overwriting a lower file writes the new file only',
    actions: [copyAction({ src: ['a.txt'], dest: '/app/old.txt' })],
    expect: { app, 'app/old.txt': F('A') },
  },
  {
    name: 'a lower directory is never replaced by a file (BuildKit refuses)',
    context: { 'rep/olddir': 'now a file' },
    actions: [copyAction({ src: ['rep'], dest: '/app' })],
    error: /cannot replace directory \/app\/olddir with a file/,
  },
  {
    name: 'a lower file is never replaced by a directory (BuildKit refuses)',
    context: { 'rep2/oldfile/': { dir: true }, 'rep2/oldfile/f': 'f' },
    actions: [copyAction({ src: ['rep2'], dest: '/app/' })],
    error: /cannot copy to non-directory: \/app\/oldfile is a file/,
  },
  {
    name: 'a directory is not merged into a symlink inside the copied tree',
    context: { 'tree/link-etc/': { dir: true }, 'tree/link-etc/x': 'x' },
    actions: [copyAction({ src: ['tree'], dest: '/' })],
    error: /cannot copy to non-directory: \/link-etc is a symlink/,
  },
  {
    name: 'the destination folder of a directory copy is made like a parent, not like the source folder',
    context: { 'priv/': { dir: true, mode: 0o700, uid: 3, gid: 3 }, 'priv/f': 'f' },
    actions: [copyAction({ src: ['priv'], dest: '/p1' })],
    expect: { p1: D(), 'p1/f': F('f') },
  },
  {
    name: 'into a directory of a non-directory is an error',
    actions: [copyAction({ src: ['a.txt'], dest: '/app/oldfile/x' })],
    error: /not a directory/,
  },
  {
    name: 'SOURCE_DATE_EPOCH is every new entry\'s mtime',
    epoch: 1700000000,
    actions: [copyAction({ src: ['src/sub'], dest: '/t/' })],
    expect: { t: D('0755', '0:0', 1700000000), 't/y.txt': F('Y', '0644', '0:0', 1700000000) },
  },
  {
    name: 'mkdir (WORKDIR) makes the missing parents',
    actions: [{ action: 'mkdir', path: '/w1/w2', mode: 0o755 }],
    expect: { w1: D(), 'w1/w2': D() },
  },
  {
    name: 'mkdir (WORKDIR) for a USER the image knows gives it the folders it makes',
    actions: [{ action: 'mkdir', path: '/w1/w2', mode: 0o755, chown: { user: 'svc' } }],
    expect: { w1: D('0755', '300:50'), 'w1/w2': D('0755', '300:50') },
  },
  {
    name: 'mkdir (WORKDIR) for a USER the image lacks makes root folders, as BuildKit does',
    actions: [
      { action: 'mkdir', path: '/w1', mode: 0o755, chown: { user: 'ghost' } },
      { action: 'mkdir', path: '/w2', mode: 0o755, chown: { user: 'ghost', group: 'staff' } },
      { action: 'mkdir', path: '/w3', mode: 0o755, chown: { user: 'svc', group: 'nogroup' } },
      { action: 'mkdir', path: '/w4', mode: 0o755, chown: { user: '1234', group: 'nogroup' } },
    ],
    expect: { w1: D('0755', '0:0'), w2: D('0755', '0:50'), w3: D('0755', '300:50'), w4: D('0755', '1234:1234') },
  },
  { name: 'mkdir of an existing directory changes nothing', actions: [{ action: 'mkdir', path: '/app', mode: 0o755 }], expect: null },
  {
    name: 'mkfile (COPY heredoc) with --chown and --chmod',
    actions: [{ action: 'mkfile', path: '/app/hello.sh', content: 'echo hi\n', mode: 0o644, chmod: '0755', chown: { user: 'app' } }],
    expect: { app, 'app/hello.sh': F('echo hi\n', '0755', '1000:1000') },
  },
  {
    name: 'two actions: the second sees the first',
    actions: [{ action: 'mkdir', path: '/two', mode: 0o700 }, copyAction({ src: ['a.txt'], dest: '/two' })],
    expect: { two: D('0700'), 'two/a.txt': F('A') },
  },
];

for (const c of cases) {
  test(`COPY: ${c.name}`, async () => {
    const ctxDir = await tempDir('kiln-ctx-');
    await writeTree(ctxDir, c.context ?? ctxTree);
    const inputs: ResolvedInput[] = [
      { kind: 'state', layers: c.scratch ? [] : [base] },
      { kind: 'context', dir: ctxDir, excludePatterns: c.ignore ?? [] },
    ];
    const op: FileOp = fileOp(...c.actions);
    const run = runAndList(store, op, inputs, testCtx(store, c.epoch));
    if (c.error) {
      await assert.rejects(run, c.error);
      return;
    }
    assert.deepEqual(await run, c.expect);
  });
}

test('COPY: hard links inside a source stay hard links', async () => {
  const ctxDir = await tempDir('kiln-ctx-');
  await mkdir(join(ctxDir, 'h'));
  await writeFile(join(ctxDir, 'h', 'one'), 'same');
  await link(join(ctxDir, 'h', 'one'), join(ctxDir, 'h', 'two'));
  const r = await import('../../../src/worker/file/index.js');
  const id = `hl-${process.pid}`;
  await r.runFile(fileOp(copyAction({ src: ['h'], dest: '/h/' })), [{ kind: 'state', layers: [] }, { kind: 'context', dir: ctxDir, excludePatterns: [] }], testCtx(store), id);
  const t = await listTree(store.snapshotFs(id), true);
  assert.equal(t['h/one']!.ino, t['h/two']!.ino);
  assert.equal(t['h/one']!.content, 'same');
});

test('COPY --from a stage keeps the source owners unless --chown', async () => {
  const stage = await makeSnapshot(store, {
    'out/': { dir: true, uid: 7, gid: 8, mode: 0o750 },
    'out/bin': { content: 'ELF', uid: 7, gid: 8, mode: 0o755 },
    'out/link': '->bin',
  });
  const inputs: ResolvedInput[] = [{ kind: 'state', layers: [base] }, { kind: 'state', layers: [stage] }];
  // The destination folder itself is made like a parent (0755, root), as BuildKit does.
  assert.deepEqual(await runAndList(store, fileOp(copyAction({ src: ['/'], dest: '/o/' })), inputs), {
    o: D(),
    'o/out': D('0750', '7:8'),
    'o/out/bin': F('ELF', '0755', '7:8'),
    'o/out/link': L('bin'),
  });
  assert.deepEqual(await runAndList(store, fileOp(copyAction({ src: ['/out'], dest: '/o/' })), inputs), {
    o: D(),
    'o/bin': F('ELF', '0755', '7:8'),
    'o/link': L('bin'),
  });
  assert.deepEqual(await runAndList(store, fileOp(copyAction({ src: ['/out/bin'], dest: '/b', chown: { user: 'app', group: 'app' } })), inputs), {
    b: F('ELF', '0755', '1000:1000'),
  });
});

test('COPY --from reads through whiteouts and opaque directories of the source layers', async () => {
  const lower = await makeSnapshot(store, { 'd/': { dir: true }, 'd/gone': 'x', 'd/kept': 'k', 'o/': { dir: true }, 'o/hidden': 'h' });
  const upper = await makeSnapshot(store, async (dir) => {
    await mkdir(join(dir, 'd'));
    const { makeWhiteout, setXattr } = await import('../../../src/util/syscalls.js');
    makeWhiteout(join(dir, 'd', 'gone'));
    await mkdir(join(dir, 'o'));
    setXattr(join(dir, 'o'), 'trusted.overlay.opaque', Buffer.from('y'));
    await writeFile(join(dir, 'o', 'new'), 'n');
  });
  const inputs: ResolvedInput[] = [{ kind: 'state', layers: [] }, { kind: 'state', layers: [lower, upper] }];
  const out = await runAndList(store, fileOp(copyAction({ src: ['/'], dest: '/r/' })), inputs);
  assert.deepEqual(Object.keys(out!).sort(), ['r', 'r/d', 'r/d/kept', 'r/o', 'r/o/new']);
});

test('COPY: nothing is written outside the staged folder when a copy fails midway', async () => {
  const ctxDir = await tempDir('kiln-ctx-');
  await writeTree(ctxDir, ctxTree);
  const inputs: ResolvedInput[] = [{ kind: 'state', layers: [base] }, { kind: 'context', dir: ctxDir, excludePatterns: [] }];
  // Listed before the copy starts: read while it runs, the listing could hold its staging folder.
  const before = await (await import('node:fs/promises')).readdir(store.path('tmp'));
  await assert.rejects(runAndList(store, fileOp(copyAction({ src: ['a.txt'], dest: '/x' }), copyAction({ src: ['nope'], dest: '/y' })), inputs));
  assert.deepEqual(await (await import('node:fs/promises')).readdir(store.path('tmp')), before);
  await chmod(ctxDir, 0o755);
});

test('COPY: a store inside the context is never part of it', async () => {
  const ctxDir = await tempDir('kiln-ctx-');
  await writeTree(ctxDir, { 'a.txt': 'A' });
  const { Store } = await import('../../../src/store/store.js');
  const inner = await Store.open(join(ctxDir, 'cache'));
  const out = await runAndList(inner, fileOp(copyAction({ src: ['.'], dest: '/c/' })), [
    { kind: 'state', layers: [] },
    { kind: 'context', dir: ctxDir, excludePatterns: ['!cache'] },
  ]);
  assert.deepEqual(out, { c: D(), 'c/a.txt': F('A') });
});
