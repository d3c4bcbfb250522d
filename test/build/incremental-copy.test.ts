// A COPY that runs again because some of its files changed links the unchanged files from its
// previous snapshot instead of copying them (src/worker/file/reuse.ts). The image must be the
// one a build from scratch gives, and the changed folder must hold exactly the new files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basename, dirname, join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { previousLayerOf } from '../../src/image/previous-layer.js';
import { createLayerTar, LAYER_TAR_FORMAT, type LayerTarOptions } from '../../src/util/tar/write.js';
import { execFileSync } from 'node:child_process';
import { chmod, link, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tempDir } from '../helpers/tmp.js';
import { busyboxStore, writeTree, buildJson, ranSteps, assertOk, readIid, BASE_REF } from './fixture.js';

const root = await busyboxStore();

const DOCKERFILE = `FROM ${BASE_REF} AS src
COPY small/ /src/
FROM ${BASE_REF}
COPY small/ /data/small/
COPY --from=src /src/d01/ /data/fromstage/
`;

const LONG_NAME = `${'n'.repeat(120)}.txt`;

function smallFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (let d = 0; d < 3; d++) for (let f = 0; f < 10; f++) files[`small/d0${d}/f${d}${f}.txt`] = `file ${d}/${f}\n`;
  // A name too long for ustar: its tar entry carries a PAX path record.
  files[`small/d00/${LONG_NAME}`] = 'long name\n';
  return files;
}

/** Snapshots (fs folders) the store's COPY lineages point at. */
async function lineageSnapshots(store: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of await readdir(join(store, 'lineage'))) {
    const id = (await readFile(join(store, 'lineage', n), 'utf8')).trim();
    out.push(join(store, 'snapshots', id, 'fs'));
  }
  return out;
}

test('a COPY rerun links unchanged files and gives the image a build without cache gives', async () => {
  const ctx = await tempDir('kiln-incr-');
  await writeTree(ctx, { Dockerfile: DOCKERFILE, ...smallFiles() });
  // A hard-linked pair in the source, broken up by the change below.
  await link(join(ctx, 'small/d01/f10.txt'), join(ctx, 'small/d01/linked.txt'));
  // And one that stays.
  await link(join(ctx, 'small/d02/f20.txt'), join(ctx, 'small/d02/pair.txt'));
  const iid = join(await tempDir('kiln-iid-'), 'iid');
  assertOk(await buildJson(root, ctx, ['--iidfile', iid]));
  const before = await readIid(iid);

  // In d01: one file rewritten, one deleted, one added, one made executable, the link broken;
  // and a new folder.
  await writeFile(join(ctx, 'small/d01/f11.txt'), 'rewritten\n');
  await rm(join(ctx, 'small/d01/f12.txt'));
  await writeFile(join(ctx, 'small/d01/added.txt'), 'added\n');
  await chmod(join(ctx, 'small/d01/f13.txt'), 0o755);
  await rm(join(ctx, 'small/d01/linked.txt'));
  await writeFile(join(ctx, 'small/d01/linked.txt'), 'file 1/0\n');
  await writeTree(ctx, { 'small/d09/new.txt': 'new folder\n' });

  const incremental = await buildJson(root, ctx, ['--iidfile', iid]);
  assertOk(incremental);
  assert.deepEqual(ranSteps(incremental), ['COPY --from=src /src/d01/ /data/fromstage/', 'COPY small/ /data/small/', 'COPY small/ /src/']);
  const after = await readIid(iid);
  assert.notEqual(after, before);

  // The unchanged files of the rerun COPYs are the previous snapshots' inodes.
  const snaps = await lineageSnapshots(root);
  const shared = async (p: string) => {
    for (const s of snaps) {
      const st = await stat(join(s, p)).catch(() => undefined);
      if (st) return st.nlink;
    }
    return 0;
  };
  assert.equal(await shared('data/small/d00/f00.txt'), 2, 'unchanged file linked from the previous snapshot');
  assert.equal(await shared('src/d02/f25.txt'), 2, 'unchanged file linked from the previous snapshot');
  assert.equal(await shared('data/fromstage/f14.txt'), 2, 'unchanged file of a COPY --from linked too');
  assert.equal(await shared('data/small/d01/f11.txt'), 1, 'a changed file is a fresh copy');
  assert.equal(await shared('data/small/d01/f13.txt'), 1, 'a file whose mode changed is a fresh copy');

  // Its layer took the unchanged files' entries from the previous layer, and only those; and
  // with the head both tars share left out, that head and the rest make the whole tar.
  const store = await Store.open(root);
  let spliced: ReadonlySet<string> | undefined;
  for (const s of snaps) {
    const id = basename(dirname(s));
    if ((await stat(join(s, 'data/small')).catch(() => undefined)) === undefined) continue;
    const previous = await previousLayerOf(store, id, null);
    assert.ok(previous, 'the previous layer');
    try {
      const names = new Set(previous.slots.keys());
      assert.ok(names.has('data/small/d00/f00.txt'));
      assert.ok(names.has(`data/small/d00/${LONG_NAME}`), 'an entry behind a PAX header');
      assert.ok(names.has('data/small/d01/f10.txt'));
      for (const changed of ['f11.txt', 'f12.txt', 'f13.txt', 'added.txt', 'linked.txt']) assert.ok(!names.has(`data/small/d01/${changed}`), changed);
      spliced = names;
      const bytes = async (o: LayerTarOptions) => {
        const tar = createLayerTar(s, o);
        const parts: Buffer[] = [];
        for await (const c of tar.stream) parts.push(c as Buffer);
        return { tar: Buffer.concat(parts), shared: tar.shared() };
      };
      const whole = (await bytes({})).tar;
      assert.ok((await bytes({ previous })).tar.equals(whole));
      const rest = await bytes({ previous, omitShared: true });
      // d00 comes before the first change (d01/f11.txt): its entries are all in the shared head.
      const firstChange = whole.indexOf(Buffer.from('data/small/d01/f11.txt\0'));
      assert.ok(rest.shared > whole.indexOf(Buffer.from(`data/small/d00/${LONG_NAME}\n`)), 'd00 is in the shared head');
      assert.ok(rest.shared <= firstChange, 'the shared head ends before the first change');
      assert.ok(Buffer.concat([previous.read(0, rest.shared), rest.tar]).equals(whole), 'head and rest are the whole tar');
    } finally {
      previous.close();
    }
  }
  assert.ok(spliced, 'the COPY small/ snapshot was found');

  const clean = join(await tempDir('kiln-iid-'), 'iid');
  assertOk(await buildJson(root, ctx, ['--no-cache', '--iidfile', clean]));
  assert.equal(await readIid(clean), after, 'the same image as a build from scratch');

  const out = join(await tempDir('kiln-incr-out-'), 'rootfs');
  assertOk(await buildJson(root, ctx, ['-o', `type=local,dest=${out}`]));
  for (const dir of ['data/small/d01', 'data/fromstage']) {
    const d = join(out, dir);
    assert.deepEqual((await readdir(d)).sort(), ['added.txt', 'f10.txt', 'f11.txt', 'f13.txt', 'f14.txt', 'f15.txt', 'f16.txt', 'f17.txt', 'f18.txt', 'f19.txt', 'linked.txt']);
    assert.equal(await readFile(join(d, 'f11.txt'), 'utf8'), 'rewritten\n');
    assert.equal(await readFile(join(d, 'added.txt'), 'utf8'), 'added\n');
    assert.equal((await stat(join(d, 'f13.txt'))).mode & 0o777, 0o755);
    assert.equal((await stat(join(d, 'f14.txt'))).mode & 0o777, 0o644);
    assert.equal(await readFile(join(d, 'linked.txt'), 'utf8'), 'file 1/0\n');
  }
  assert.equal(await readFile(join(out, 'data/small/d09/new.txt'), 'utf8'), 'new folder\n');
});

test('a COPY rerun under another SOURCE_DATE_EPOCH links nothing and matches a build from scratch', async () => {
  const ctx = await tempDir('kiln-incr-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nCOPY small/ /data/small/\n`, ...smallFiles() });
  assertOk(await buildJson(root, ctx, []));
  await writeFile(join(ctx, 'small/d00/f00.txt'), 'changed\n');
  const iid = join(await tempDir('kiln-iid-'), 'iid');
  assertOk(await buildJson(root, ctx, ['--source-date-epoch', '1000', '--iidfile', iid]));
  for (const s of await lineageSnapshots(root)) {
    const st = await stat(join(s, 'data/small/d00/f01.txt')).catch(() => undefined);
    if (st) assert.equal(st.nlink, 1, 'files stamped with another mtime are not shared');
  }
  const clean = join(await tempDir('kiln-iid-'), 'iid');
  assertOk(await buildJson(root, ctx, ['--source-date-epoch', '1000', '--no-cache', '--iidfile', clean]));
  assert.equal(await readIid(iid), await readIid(clean));
});

test('a COPY rerun because the layers below it changed links every file', async () => {
  const ctx = await tempDir('kiln-incr-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nARG SALT\nRUN echo "$SALT" > /salt\nCOPY small/ /data/small/\n`, ...smallFiles() });
  // The epoch clamps the RUN's mtimes, so that its rerun without cache gives the same layer.
  const epoch = ['--source-date-epoch', '1'];
  assertOk(await buildJson(root, ctx, [...epoch, '--build-arg', 'SALT=1']));
  const iid = join(await tempDir('kiln-iid-'), 'iid');
  const second = await buildJson(root, ctx, [...epoch, '--build-arg', 'SALT=2', '--iidfile', iid]);
  assertOk(second);
  assert.ok(ranSteps(second).includes('COPY small/ /data/small/'));
  const snaps = await lineageSnapshots(root);
  const nlinks: number[] = [];
  for (const s of snaps) {
    const st = await stat(join(s, 'data/small/d02/f29.txt')).catch(() => undefined);
    if (st) nlinks.push(st.nlink);
  }
  assert.ok(nlinks.includes(2), `linked from the earlier snapshot (${nlinks.join(', ')})`);
  const clean = join(await tempDir('kiln-iid-'), 'iid');
  assertOk(await buildJson(root, ctx, [...epoch, '--build-arg', 'SALT=2', '--no-cache', '--iidfile', clean]));
  assert.equal(await readIid(clean), await readIid(iid));
});

/** Permission strings (`tar -tv`) of `names` in the image's layers, the topmost entry winning. */
async function layerPerms(root: string, ctx: string, names: string[]): Promise<Record<string, string>> {
  const dir = await tempDir('kiln-perms-');
  assertOk(await buildJson(root, ctx, ['-o', `type=docker,dest=${join(dir, 'image.tar')},compression=uncompressed`]));
  execFileSync('tar', ['-xf', join(dir, 'image.tar'), '-C', dir]);
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  const perms: Record<string, string> = {};
  for (const layer of manifest[0]!.Layers) {
    for (const line of execFileSync('tar', ['-tvf', join(dir, layer)], { encoding: 'utf8' }).split('\n')) {
      const name = line.split(/\s+/).pop()!;
      if (names.includes(name)) perms[name] = line.slice(0, 10);
    }
  }
  return perms;
}

test('entries without permission bits stay mode 0 in layers; a rerun takes no entries from an older writer\'s tar', async () => {
  const ctx = await tempDir('kiln-incr-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nCOPY small/ /data/small/\nRUN touch /shadow && chmod 000 /shadow\n`, ...smallFiles() });
  await chmod(join(ctx, 'small/d00/f00.txt'), 0);
  const names = ['data/small/d00/f00.txt', 'shadow'];
  assert.deepEqual(await layerPerms(root, ctx, names), { 'data/small/d00/f00.txt': '----------', shadow: '----------' });

  // Layers archived before the writer recorded its format.
  const store = await Store.open(root);
  const before = await lineageSnapshots(root);
  for (const s of before) await store.updateSnapshotMeta(basename(dirname(s)), { tarFormat: undefined });
  await writeFile(join(ctx, 'small/d02/f20.txt'), 'changed\n');
  assert.deepEqual(await layerPerms(root, ctx, names), { 'data/small/d00/f00.txt': '----------', shadow: '----------' });
  const reran = (await lineageSnapshots(root)).filter((s) => !before.includes(s));
  assert.ok(reran.length > 0, 'the COPY ran again');
  for (const s of reran) assert.equal(await previousLayerOf(store, basename(dirname(s)), null), undefined, 'an older writer\'s tar lends no entries');
  // The same tar recorded as this writer's lends them.
  for (const s of before) await store.updateSnapshotMeta(basename(dirname(s)), { tarFormat: LAYER_TAR_FORMAT });
  for (const s of reran) {
    const previous = await previousLayerOf(store, basename(dirname(s)), null);
    assert.ok(previous?.slots.has('data/small/d00/f00.txt'));
    previous?.close();
  }
});
