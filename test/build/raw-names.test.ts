// File names that are not UTF-8 (a RUN step naming a file in Latin-1): no JavaScript string can
// hold them, so kiln carries them as bytes from the snapshot to the layer tar, and from a layer
// tar back into a snapshot or a folder output. BuildKit keeps them; kiln used to stop with an
// internal error (the layer writer) or write U+FFFD in their place (the extractor).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { busyboxStore, writeTree, BASE_REF } from './fixture.js';

const root = await busyboxStore();

const CAFE = Buffer.from('caf\xe9', 'latin1');
const DIR = Buffer.from('d\xff', 'latin1');

/** `name` (bytes) under folder `dir`. */
const under = (dir: string, name: Buffer): Buffer => Buffer.concat([Buffer.from(`${dir}/`), name]);

function names(dir: string | Buffer): Buffer[] {
  return readdirSync(dir, { encoding: 'buffer' });
}

const has = (list: Buffer[], name: Buffer): boolean => list.some((n) => n.equals(name));

test('names that are not UTF-8 reach the layer, later steps, a re-import and a folder output byte for byte', async () => {
  const ctx = await tempDir('kiln-raw-');
  await writeTree(ctx, {
    Dockerfile: [
      `FROM ${BASE_REF}`,
      `RUN n="/caf$(printf '\\351')" d="/d$(printf '\\377')" && touch "$n" && mkdir "$d" && echo x > "$d/in" && ln -s "$n" /lnk && ln "$n" /hard`,
      // A glob, not ls: busybox's ls prints such bytes as '?'.
      'RUN for f in /*; do echo "$f"; done > /list',
      '',
    ].join('\n'),
  });
  const work = await tempDir('kiln-raw-out-');
  const image = join(work, 'image.tar');
  const r = await runKiln(['build', '--root', root, '--progress', 'quiet', '-o', `type=docker,dest=${image},compression=uncompressed`, ctx]);
  assert.equal(r.code, 0, r.stderr);

  // The RUN's layer, unpacked by GNU tar: the names, the link's target and the hard link.
  const unpacked = join(work, 'unpacked');
  await mkdir(unpacked);
  execFileSync('tar', ['-xf', image, '-C', unpacked]);
  const manifest = JSON.parse(await readFile(join(unpacked, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  const layers = manifest[0]!.Layers;
  const runLayer = join(work, 'run-layer');
  await mkdir(runLayer);
  execFileSync('tar', ['-xf', join(unpacked, layers[layers.length - 2]!), '-C', runLayer]);
  assert.ok(has(names(runLayer), CAFE), 'the file');
  assert.ok(has(names(under(runLayer, DIR)), Buffer.from('in')), 'the folder and its file');
  assert.ok(readlinkSync(join(runLayer, 'lnk'), { encoding: 'buffer' }).equals(Buffer.concat([Buffer.from('/'), CAFE])), 'the link target');
  assert.equal(lstatSync(join(runLayer, 'hard')).ino, lstatSync(under(runLayer, CAFE)).ino, 'the hard link');

  // The next step saw the names as they are.
  const listOf = async (dest: string): Promise<Buffer> => readFileSync(join(dest, 'list'));
  const out = join(work, 'rootfs');
  const local = await runKiln(['build', '--root', root, '--progress', 'quiet', '-o', `type=local,dest=${out}`, ctx]);
  assert.equal(local.code, 0, local.stderr);
  const line = (name: Buffer): Buffer => Buffer.concat([Buffer.from('/'), name, Buffer.from('\n')]);
  assert.ok((await listOf(out)).includes(line(CAFE)), 'the next step');
  // The folder output has them too.
  assert.ok(has(names(out), CAFE) && has(names(out), DIR));

  // Imported as an image and built on: its layers become snapshots with the same names.
  const imp = await runKiln(['import', '--root', root, '--name', 'raw:imported', image]);
  assert.equal(imp.code, 0, imp.stderr);
  const ctx2 = await tempDir('kiln-raw-');
  await writeTree(ctx2, { Dockerfile: 'FROM raw:imported\nRUN for f in /*; do echo "$f"; done > /list\n' });
  const out2 = join(work, 'rootfs2');
  const again = await runKiln(['build', '--root', root, '--progress', 'quiet', '-o', `type=local,dest=${out2}`, ctx2]);
  assert.equal(again.code, 0, again.stderr);
  const list = await listOf(out2);
  assert.ok(list.includes(line(CAFE)) && list.includes(line(DIR)), list.toString('latin1'));
});
