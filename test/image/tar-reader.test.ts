// kiln's tar reader reads archives as Go's archive/tar does (Docker's and BuildKit's extractor),
// where tar-stream's extractor, which it replaced, read them otherwise. The archives here are
// made block by block (helpers/tar-blocks.ts), so that what is tested does not go through the
// code under test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { tempDir } from '../helpers/tmp.js';
import { TarReader, type TarEntryHeader } from '../../src/util/tar/reader.js';
import { extractTar } from '../../src/util/tar/extract.js';
import { encodePax } from '../../src/util/tar/pax.js';
import { END, entry, goSemanticsArchive, header } from '../helpers/tar-blocks.js';
import { KilnError } from '../../src/util/errors.js';

function read(archive: Buffer, chunk: number): Array<{ h: TarEntryHeader; body: string; ended: boolean }> {
  const seen: Array<{ h: TarEntryHeader; body: string; ended: boolean }> = [];
  const reader = new TarReader((h) => {
    const item = { h, body: '', ended: false };
    seen.push(item);
    return {
      data: (c) => void (item.body += c.toString('latin1')),
      end: () => void (item.ended = true),
    };
  });
  for (let i = 0; i < archive.length; i += chunk) reader.push(archive.subarray(i, i + chunk));
  reader.finish();
  assert.ok(reader.ended);
  return seen;
}

test('tar reader: global PAX headers are ignored, links carry no body, PAX mtimes apply, GNU long names beat PAX paths, NUL-typed names ending in / are folders', () => {
  const archive = goSemanticsArchive();
  const whole = read(archive, archive.length);
  assert.deepEqual(
    whole.map(({ h, body, ended }) => ({ name: h.name, type: h.type, size: h.size, body, ended })),
    [
      { name: 'from-pax', type: 'file', size: 8, body: 'pax file', ended: true },
      { name: 'link', type: 'symlink', size: 0, body: '', ended: true },
      { name: 'gnu-wins', type: 'file', size: 12, body: 'named by GNU', ended: true },
      { name: 'olddir/', type: 'directory', size: 0, body: '', ended: true },
      { name: 'last', type: 'file', size: 7, body: 'the end', ended: true },
    ],
  );
  assert.equal(whole[0]!.h.mtime.getTime(), 1_700_000_000_250);
  assert.equal(whole[1]!.h.linkname, 'from-pax');
  assert.equal(whole[4]!.h.mtime.getTime(), 1_600_000_000_000, 'the global mtime does not apply');
  assert.deepEqual(whole[4]!.h.pax, { comment: 'a local header of its own' }, 'nor do global records merge into a local header');
  // The same entries whatever pieces the bytes come in.
  for (const size of [1, 511, 513, 4096]) {
    assert.deepEqual(read(archive, size).map(({ h, body }) => [h.name, body]), whole.map(({ h, body }) => [h.name, body]), `pieces of ${size}`);
  }
});

test('tar reader: an archive cut inside a header or a body is an error; cut between entries it is not', () => {
  const one = entry({ name: 'a', type: '0' }, 'x'.repeat(600));
  const reader = (bytes: Buffer) => () => {
    const r = new TarReader(() => undefined);
    r.push(bytes);
    r.finish();
  };
  assert.throws(reader(one.subarray(0, 300)), /unexpected end of data at byte 300 \(the archive is truncated\)/);
  assert.throws(reader(one.subarray(0, 700)), /unexpected end of data at byte 700/);
  assert.throws(reader(one.subarray(0, one.length - 1)), /unexpected end of data/, 'the last block of padding is missing');
  assert.doesNotThrow(reader(one));
  assert.doesNotThrow(reader(Buffer.concat([one, Buffer.alloc(512)])), 'one zero block, then the end of the input');
});

test('tar reader: a PAX size that is not a number and an oversized PAX header are refused, naming where they are', () => {
  const read = (bytes: Buffer) => () => new TarReader(() => undefined).push(bytes);
  const badSize = Buffer.concat([entry({ name: 'P', type: 'x' }, encodePax([['size', '12x']])), entry({ name: 'f', type: '0' }, 'f'), END]);
  assert.throws(read(badSize), /the entry at byte 1024 has a bad PAX size "12x"/);
  const huge = header({ name: 'P', type: 'x', size: 2 << 20 });
  assert.throws(read(huge), /a pax-header header at byte 0 of 2097152 bytes/);
});

test('extractTar writes what the reader reads as Go does: the PAX mtime to the millisecond, a bodiless symlink, the GNU name, an old-style folder', async () => {
  const dest = await tempDir('kiln-goread-');
  await extractTar(Readable.from([goSemanticsArchive()]), dest, { whiteouts: 'apply' });
  assert.deepEqual(readdirSync(dest).sort(), ['from-pax', 'gnu-wins', 'last', 'link', 'olddir']);
  assert.equal(lstatSync(join(dest, 'from-pax')).mtimeMs, 1_700_000_000_250);
  assert.equal(readlinkSync(join(dest, 'link')), 'from-pax');
  assert.equal(readFileSync(join(dest, 'gnu-wins'), 'utf8'), 'named by GNU');
  assert.ok(lstatSync(join(dest, 'olddir')).isDirectory());
  assert.equal(readFileSync(join(dest, 'last'), 'utf8'), 'the end');
});

test('extractTar of an archive cut inside a file body: a KilnError naming the archive, and the file it was writing is closed', async () => {
  const dest = await tempDir('kiln-cut-');
  const archive = Buffer.concat([entry({ name: 'whole', type: '0' }, 'w'), entry({ name: 'cut', type: '0' }, 'c'.repeat(5000))]);
  const fds = () => readdirSync('/proc/self/fd').length;
  const before = fds();
  // Pieces, so that the file is open when the input stops.
  const pieces = [archive.subarray(0, 2048), archive.subarray(2048, 3000)];
  await assert.rejects(extractTar(Readable.from(pieces), dest, { whiteouts: 'apply', label: 'cut.tar' }), (err: unknown) => {
    assert.ok(err instanceof KilnError);
    assert.match(err.message, /^cut\.tar: cannot extract: unexpected end of data at byte 3000/);
    return true;
  });
  assert.equal(fds(), before);
  assert.equal(readFileSync(join(dest, 'whole'), 'utf8'), 'w');
});
