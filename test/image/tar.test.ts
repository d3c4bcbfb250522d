import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, writeFile, symlink, link, utimes, lutimes, readdir, chown } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import tar from 'tar-stream';
import { tempDir } from '../helpers/tmp.js';
import { createLayerTar } from '../../src/util/tar/write.js';
import { extractTar } from '../../src/util/tar/extract.js';
import { compressor, detectCompression, openDecompressed, spawnFilter } from '../../src/util/tar/filter.js';
import { getXattr, listXattrs, makeWhiteout, setXattr } from '../../src/util/syscalls.js';
import { KilnError } from '../../src/util/errors.js';

async function tarBytes(dir: string, sourceDateEpoch?: number): Promise<Buffer> {
  const { stream, stats } = createLayerTar(dir, { sourceDateEpoch });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  await stats;
  return Buffer.concat(chunks);
}

// sha256 of makeEdgeCaseDir's layer tar, as kiln has written it since modes of 0 stay 0 (before,
// with tar-stream's pack's defaults, they became 0644 and 0755).
const GOLDEN_PLAIN = '042fd9ccc32a3bf0ac0d1d719c2a320c208f6abebeb828702136258021f4b702';
const GOLDEN_EPOCH = '8edadf59ef13a851dc85fe78f74d5d50251817d7c74ac27aead8dc8f94f20fd6';

const CAP = Buffer.from([1, 0, 0, 2, 0x80, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

async function makeSnapshotDir(dir: string, mtime: number): Promise<void> {
  await mkdir(join(dir, 'etc/app'), { recursive: true });
  await writeFile(join(dir, 'etc/app/conf'), 'key=value\n');
  await link(join(dir, 'etc/app/conf'), join(dir, 'etc/app/conf.hard'));
  await symlink('app/conf', join(dir, 'etc/link'));
  await writeFile(join(dir, 'bin'), 'binary', { mode: 0o4755 });
  setXattr(join(dir, 'bin'), 'security.capability', CAP);
  setXattr(join(dir, 'bin'), 'trusted.overlay.origin', Buffer.from('x'));
  makeWhiteout(join(dir, 'deleted'));
  await mkdir(join(dir, 'opaque'));
  setXattr(join(dir, 'opaque'), 'trusted.overlay.opaque', Buffer.from('y'));
  await writeFile(join(dir, 'opaque', 'kept'), 'k');
  const long = join(dir, 'd'.repeat(90), 'e'.repeat(90));
  await mkdir(long, { recursive: true });
  await writeFile(join(long, 'f'.repeat(120)), 'long name');
  await writeFile(join(dir, 'ünicode'), 'u');
  for (const p of ['etc/app/conf', 'etc/app', 'etc', 'bin', 'opaque/kept', 'opaque', 'ünicode']) await utimes(join(dir, p), mtime, mtime);
}

test('layer tar: sorted, numeric owners, whiteouts and opaque markers, no overlay xattrs, readable by GNU tar', async () => {
  const dir = await tempDir();
  await makeSnapshotDir(join(dir, 'src'), 1_800_000_000);
  const bytes = await tarBytes(join(dir, 'src'), 1_700_000_000);
  await writeFile(join(dir, 'layer.tar'), bytes);
  const listing = execFileSync('tar', ['-tvf', join(dir, 'layer.tar'), '--numeric-owner', '--full-time'], { encoding: 'utf8' });
  const names = execFileSync('tar', ['-tf', join(dir, 'layer.tar')], { encoding: 'utf8' }).trim().split('\n');
  assert.ok(names.includes('.wh.deleted'), names.join(','));
  assert.ok(names.includes('opaque/.wh..wh..opq'));
  assert.ok(names.includes('etc/app/conf.hard'));
  assert.ok(names.some((n) => n.endsWith('f'.repeat(120))), 'long names survive via PAX');
  assert.ok(names.includes('ünicode'));
  assert.ok(names.indexOf('etc/') < names.indexOf('etc/app/'));
  assert.match(listing, /hrw-r--r-- 0\/0 +0 .* etc\/app\/conf.hard link to etc\/app\/conf/);
  assert.match(listing, /-rwsr-xr-x 0\/0 +6 2023-11-14 22:13:20 bin/, 'mtime clamped to SOURCE_DATE_EPOCH');
  // No user or group names anywhere in the headers.
  const ex = tar.extract();
  const seen: tar.Header[] = [];
  const done = (async () => {
    for await (const e of ex) {
      seen.push(e.header);
      e.resume();
    }
  })();
  await pipeline(Readable.from([bytes]), ex);
  await done;
  for (const h of seen) {
    assert.equal(h.uname ?? '', '', h.name);
    assert.equal(h.gname ?? '', '', h.name);
  }
  const binPax = seen.find((h) => h.name === 'bin')!.pax as Record<string, string>;
  assert.ok(binPax['SCHILY.xattr.security.capability'] !== undefined);
  assert.ok(!Object.keys(binPax).some((k) => k.includes('trusted.overlay')));
});

test('layer tar: same contents with different mtimes and creation order give the same bytes under SOURCE_DATE_EPOCH', async () => {
  const dir = await tempDir();
  await makeSnapshotDir(join(dir, 'a'), 1_800_000_000);
  await makeSnapshotDir(join(dir, 'b'), 1_900_000_000);
  const a = await tarBytes(join(dir, 'a'), 1_000_000);
  const b = await tarBytes(join(dir, 'b'), 1_000_000);
  assert.equal(createHash('sha256').update(a).digest('hex'), createHash('sha256').update(b).digest('hex'));
  const c = await tarBytes(join(dir, 'a'));
  assert.notEqual(createHash('sha256').update(a).digest('hex'), createHash('sha256').update(c).digest('hex'));
});

/** makeSnapshotDir plus the header cases kiln's defaults and fallbacks touch. */
async function makeEdgeCaseDir(dir: string): Promise<void> {
  await makeSnapshotDir(dir, 1_600_000_000);
  await writeFile(join(dir, 'mode0'), 'm', { mode: 0 });
  await writeFile(join(dir, 'empty'), '');
  await writeFile(join(dir, 'bigid'), 'b');
  await chown(join(dir, 'bigid'), 3_000_000, 5);
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  await symlink('t'.repeat(150), join(dir, 'longtarget'));
  // Bigger than one read chunk, with a fixed pseudo-random body.
  const big = Buffer.alloc(1_500_000 + 17);
  for (let i = 0, x = 7; i < big.length; i++) big[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  await writeFile(join(dir, 'big'), big);
  await mkdir(join(dir, 'dir0'), { mode: 0 });
  // Every entry gets one fixed mtime (children before their folders), so the bytes are fixed.
  const names = (await readdir(dir, { recursive: true })).sort((a, b) => b.length - a.length);
  for (const p of names) await lutimes(join(dir, p), 1_600_000_000, 1_600_000_000);
}

test('layer tar: the bytes are pinned (image digests must not change with the writer)', async () => {
  const dir = await tempDir();
  await makeEdgeCaseDir(join(dir, 'src'));
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const plain = await tarBytes(join(dir, 'src'));
  assert.equal(sha(plain), GOLDEN_PLAIN);
  assert.equal(sha(await tarBytes(join(dir, 'src'), 1_000_000)), GOLDEN_EPOCH);
  // No permission bits stay none (tar-stream's pack would have written 0644 and 0755).
  await writeFile(join(dir, 'layer.tar'), plain);
  const listing = execFileSync('tar', ['-tvf', join(dir, 'layer.tar'), '--numeric-owner'], { encoding: 'utf8' });
  assert.match(listing, /^---------- 0\/0 +1 .* mode0$/m);
  assert.match(listing, /^d--------- 0\/0 +0 .* dir0\/$/m);
});

test('extract overlay: round trip keeps types, modes, links, binary xattrs, whiteouts and opaque dirs', async () => {
  const dir = await tempDir();
  await makeSnapshotDir(join(dir, 'src'), 1_500_000_000);
  const bytes = await tarBytes(join(dir, 'src'));
  await mkdir(join(dir, 'out'));
  await extractTar(Readable.from([bytes]), join(dir, 'out'), { whiteouts: 'overlay' });
  const out = join(dir, 'out');
  assert.equal(lstatSync(join(out, 'deleted')).isCharacterDevice(), true);
  assert.equal(lstatSync(join(out, 'deleted')).rdev, 0);
  assert.equal(getXattr(join(out, 'opaque'), 'trusted.overlay.opaque')?.toString(), 'y');
  assert.deepEqual(getXattr(join(out, 'bin'), 'security.capability'), CAP);
  assert.ok(!listXattrs(join(out, 'bin')).includes('trusted.overlay.origin'));
  assert.equal(lstatSync(join(out, 'bin')).mode & 0o7777, 0o4755);
  assert.equal(lstatSync(join(out, 'etc/app/conf')).ino, lstatSync(join(out, 'etc/app/conf.hard')).ino);
  assert.equal(readlinkSync(join(out, 'etc/link')), 'app/conf');
  assert.equal(lstatSync(join(out, 'etc')).mtimeMs, 1_500_000_000_000);
  // Re-archiving the extracted folder gives the identical tar.
  assert.deepEqual(await tarBytes(out), bytes);
});

test('names and link targets that are not UTF-8 go into PAX records as their bytes and come back out', async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  const raw = (name: string) => Buffer.from(`${src}/${name}`, 'latin1');
  await writeFile(raw('caf\xe9'), 'c');
  await mkdir(raw('d\xff'));
  await writeFile(raw('d\xff/in\xe8'), 'i');
  await symlink(Buffer.from('caf\xe9', 'latin1'), join(src, 'lnk'));
  await link(raw('caf\xe9'), join(src, 'hard'));
  await writeFile(join(src, 'plain'), 'p');
  const bytes = await tarBytes(src, 1);
  const names = execFileSync('tar', ['-tf', '-', '--quoting-style=literal'], { input: bytes }).toString('latin1').trim().split('\n');
  assert.deepEqual(names, ['caf\xe9', 'd\xff/', 'd\xff/in\xe8', 'hard', 'lnk', 'plain'], 'byte order, raw names');
  const out = join(dir, 'out');
  await mkdir(out);
  await extractTar(Readable.from([bytes]), out, { whiteouts: 'overlay' });
  assert.ok(readlinkSync(join(out, 'lnk'), { encoding: 'buffer' }).equals(Buffer.from('caf\xe9', 'latin1')));
  assert.equal(lstatSync(join(out, 'hard')).ino, lstatSync(Buffer.from(`${out}/caf\xe9`, 'latin1')).ino);
  assert.deepEqual(await tarBytes(out, 1), bytes, 're-archived, the same tar');
});

test('owner ids too big for the codec\'s ustar fields go in PAX records and come back out of them', async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  const ids: Array<[string, number, number]> = [['edge', 262_143, 5], ['mid', 300_000, 262_144], ['ldap', 1_000_001, 2_000_000], ['huge', 3_000_000, 99_999_999]];
  for (const [name, uid, gid] of ids) {
    await writeFile(join(src, name), name);
    await chown(join(src, name), uid, gid);
  }
  const bytes = await tarBytes(src, 1);
  const listing = execFileSync('tar', ['-tvf', '-', '--numeric-owner'], { input: bytes }).toString();
  for (const [name, uid, gid] of ids) assert.match(listing, new RegExp(`^-rw-r--r-- ${uid}/${gid} .* ${name}$`, 'm'));
  const out = join(dir, 'out');
  await mkdir(out);
  await extractTar(Readable.from([bytes]), out, { whiteouts: 'overlay' });
  for (const [name, uid, gid] of ids) {
    const st = lstatSync(join(out, name));
    assert.deepEqual([st.uid, st.gid], [uid, gid], name);
  }
});

test('mtimes after January 2038 are written and read back whole (the codec cut them to 32 bits)', async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  const times: Array<[string, number]> = [['y2038', 2_147_483_648], ['y2040', 2_209_086_245], ['y2100', 4_115_491_200]];
  for (const [name, t] of times) {
    await writeFile(join(src, name), name);
    await utimes(join(src, name), t, t);
  }
  const bytes = await tarBytes(src);
  const listing = execFileSync('tar', ['-tvf', '-', '--full-time', '--utc'], { input: bytes }).toString();
  assert.match(listing, / 2038-01-19 03:14:08 y2038$/m);
  assert.match(listing, / 2040-01-02 03:04:05 y2040$/m);
  assert.match(listing, / 2100-06-01 00:00:00 y2100$/m);
  const out = join(dir, 'out');
  await mkdir(out);
  await extractTar(Readable.from([bytes]), out, { whiteouts: 'overlay' });
  for (const [name, t] of times) assert.equal(lstatSync(join(out, name)).mtimeMs, t * 1000, name);
});

test('device numbers above 262143 keep their seven octal digits', async () => {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  execFileSync('mknod', [join(src, 'dev'), 'c', '300', '1000000']);
  const bytes = await tarBytes(src);
  assert.match(execFileSync('tar', ['-tvf', '-'], { input: bytes }).toString(), /^c.* 300,1000000 .* dev$/m);
  const out = join(dir, 'out');
  await mkdir(out);
  await extractTar(Readable.from([bytes]), out, { whiteouts: 'overlay' });
  assert.equal(lstatSync(join(out, 'dev')).rdev, lstatSync(join(src, 'dev')).rdev);
});

test('extract apply: whiteouts delete, opaque markers clear lower contents but keep this layer', async () => {
  const dir = await tempDir();
  const out = join(dir, 'out');
  await mkdir(join(out, 'opaque/old'), { recursive: true });
  await writeFile(join(out, 'deleted'), 'lower');
  await writeFile(join(out, 'untouched'), 'lower');
  await makeSnapshotDir(join(dir, 'src'), 1_500_000_000);
  await extractTar(Readable.from([await tarBytes(join(dir, 'src'))]), out, { whiteouts: 'apply' });
  assert.equal(existsSync(join(out, 'deleted')), false);
  assert.deepEqual(await readdir(join(out, 'opaque')), ['kept']);
  assert.equal(readFileSync(join(out, 'untouched'), 'utf8'), 'lower');
  assert.ok(!(await readdir(out)).some((n) => n.startsWith('.wh.')));
});

function evilTar(entries: Array<{ header: tar.Header | Partial<tar.Header> & { name: string }; body?: string }>): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ mode: 0o644, mtime: new Date(0), ...e.header }, e.body ?? '');
  pack.finalize();
  return (async () => {
    const chunks: Buffer[] = [];
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  })();
}

const evilCases: Array<{ name: string; entries: Array<{ header: Partial<tar.Header> & { name: string }; body?: string }>; error: RegExp }> = [
  { name: 'zip-slip with ..', entries: [{ header: { name: '../../escaped', type: 'file' }, body: 'x' }], error: /path with \.\./ },
  { name: 'dot-dot in the middle', entries: [{ header: { name: 'a/../../escaped', type: 'file' }, body: 'x' }], error: /path with \.\./ },
  {
    name: 'write through an absolute symlink',
    entries: [
      { header: { name: 'link', type: 'symlink', linkname: '/OUTSIDE' } },
      { header: { name: 'link/escaped', type: 'file' }, body: 'x' },
    ],
    error: /parent link is a symlink/,
  },
  { name: 'relative symlink leading out', entries: [{ header: { name: 'a/up', type: 'symlink', linkname: '../../..' } }], error: /points outside/ },
  { name: 'hard link to a host file', entries: [{ header: { name: 'hl', type: 'link', linkname: '../../../../etc/passwd' } }], error: /hard link/ },
  // An absolute target is inside the destination, which has no etc/passwd.
  { name: 'hard link to an absolute path', entries: [{ header: { name: 'hl', type: 'link', linkname: '/etc/passwd' } }], error: /hard link target \/etc\/passwd does not exist/ },
];

for (const mode of ['overlay', 'apply'] as const) {
  for (const c of evilCases) {
    test(`extract ${mode} refuses ${c.name}, writing nothing outside`, async () => {
      const dir = await tempDir();
      const dest = join(dir, 'a', 'b', 'dest');
      await mkdir(dest, { recursive: true });
      const entries = c.entries.map((e) => ({ header: { ...e.header, linkname: e.header.linkname?.replace('/OUTSIDE', join(dir, 'outside')) } }));
      const bytes = await evilTar(entries.map((e, i) => ({ header: e.header as tar.Header, body: c.entries[i]!.body })));
      await assert.rejects(extractTar(Readable.from([bytes]), dest, { whiteouts: mode, label: 'evil.tar' }), (err: unknown) => {
        assert.ok(err instanceof KilnError);
        assert.match(err.message, /^evil\.tar: refusing to extract/);
        assert.match(err.message, c.error);
        return true;
      });
      const outside = execFileSync('find', [dir, '-path', dest, '-prune', '-o', '-print'], { encoding: 'utf8' }).trim().split('\n');
      assert.deepEqual(outside.sort(), [dir, join(dir, 'a'), join(dir, 'a', 'b')].sort());
      assert.equal(existsSync('/tmp/escaped'), false);
    });
  }
}

test('absolute names and inner .. are cleaned inside the destination, as Docker and containerd extract them', async () => {
  const bytes = await evilTar([
    { header: { name: '/tmp/escaped', type: 'file' } as tar.Header, body: 'abs' },
    { header: { name: '/../../up/clamped', type: 'file' } as tar.Header, body: 'clamped' },
    { header: { name: 'a/../b/./c', type: 'file' } as tar.Header, body: 'inner' },
    { header: { name: 'hl', type: 'link', linkname: '/tmp/escaped' } as tar.Header },
  ]);
  for (const mode of ['overlay', 'apply'] as const) {
    const dir = await tempDir();
    const dest = join(dir, 'dest');
    await mkdir(dest);
    await extractTar(Readable.from([bytes]), dest, { whiteouts: mode, label: 'abs.tar' });
    const listed = execFileSync('find', [dir, '-type', 'f', '-printf', '%P=%n\n'], { encoding: 'utf8' }).trim().split('\n').sort();
    assert.deepEqual(listed, ['dest/b/c=1', 'dest/hl=2', 'dest/tmp/escaped=2', 'dest/up/clamped=1']);
    assert.equal(readFileSync(join(dest, 'tmp', 'escaped'), 'utf8'), 'abs');
    assert.equal(readFileSync(join(dest, 'b', 'c'), 'utf8'), 'inner');
  }
  assert.equal(existsSync('/tmp/escaped'), false);
  assert.equal(existsSync('/up/clamped'), false);
});

test('an archive that writes a path twice, or through one it made, extracts the same into an empty folder (where nothing is looked up) as into a used one', async () => {
  const bytes = await evilTar([
    { header: { name: 'a', type: 'file' } as tar.Header, body: 'file first' },
    { header: { name: 'a', type: 'directory', mode: 0o750 } as tar.Header },
    { header: { name: 'a/b', type: 'file' } as tar.Header, body: 'inside' },
    { header: { name: 'c', type: 'file' } as tar.Header, body: 'one' },
    { header: { name: 'c', type: 'file' } as tar.Header, body: 'two' },
    { header: { name: 'd/e', type: 'file' } as tar.Header, body: 'e' },
    { header: { name: 'd', type: 'file' } as tar.Header, body: 'now a file' },
    { header: { name: 'h', type: 'link', linkname: 'c' } as tar.Header },
    { header: { name: 'h', type: 'file' } as tar.Header, body: 'own file' },
  ]);
  const listings: string[][] = [];
  for (const used of [false, true]) {
    const dest = join(await tempDir(), 'dest');
    await mkdir(dest);
    if (used) await writeFile(join(dest, 'unrelated'), 'u');
    await extractTar(Readable.from([bytes]), dest, { whiteouts: 'overlay', label: 'twice.tar' });
    const listed = execFileSync('find', [dest, '-mindepth', '1', '-not', '-name', 'unrelated', '-printf', '%P %y %m %n\n'], { encoding: 'utf8' }).trim().split('\n').sort();
    listings.push(listed);
    assert.equal(readFileSync(join(dest, 'a', 'b'), 'utf8'), 'inside');
    assert.equal(readFileSync(join(dest, 'c'), 'utf8'), 'two');
    assert.equal(readFileSync(join(dest, 'd'), 'utf8'), 'now a file');
    assert.equal(readFileSync(join(dest, 'h'), 'utf8'), 'own file');
  }
  assert.deepEqual(listings[0], ['a d 750 2', 'a/b f 644 1', 'c f 644 1', 'd f 644 1', 'h f 644 1']);
  assert.deepEqual(listings[0], listings[1]);
  // A link the archive made is still refused as a parent, in an empty folder too.
  const through = await evilTar([
    { header: { name: 'l', type: 'symlink', linkname: '/etc' } as tar.Header },
    { header: { name: 'l/passwd', type: 'file' } as tar.Header, body: 'x' },
  ]);
  const dest = join(await tempDir(), 'dest');
  await mkdir(dest);
  await assert.rejects(extractTar(Readable.from([through]), dest, { whiteouts: 'overlay', label: 'through.tar' }), /its parent l is a symlink/);
});

test('compression is detected by content: gzip, bzip2, xz, zstd and plain all extract', async () => {
  const dir = await tempDir();
  await makeSnapshotDir(join(dir, 'src'), 1_500_000_000);
  const plain = await tarBytes(join(dir, 'src'));
  await writeFile(join(dir, 'layer'), plain);
  const programs: Array<[string, string[], string]> = [
    ['gzip', ['-c'], 'gzip'],
    ['bzip2', ['-c'], 'bzip2'],
    ['xz', ['-c'], 'xz'],
    ['zstd', ['-c', '-q'], 'zstd'],
    ['cat', [], 'none'],
  ];
  for (const [prog, args, format] of programs) {
    const packed = execFileSync(prog, [...args, join(dir, 'layer')], { maxBuffer: 1 << 26 });
    assert.equal(detectCompression(packed.subarray(0, 8)), format);
    const out = join(dir, `out-${format}`);
    await mkdir(out);
    // A misleading name on purpose: only the bytes decide.
    await writeFile(join(dir, 'archive.txt'), packed);
    await extractTar(await openDecompressed(createReadStream(join(dir, 'archive.txt'))), out, { whiteouts: 'overlay' });
    assert.deepEqual(await tarBytes(out), plain, format);
  }
});

test('zstd and gzip compressors are deterministic; a failing decompressor is a KilnError', async () => {
  const input = Buffer.alloc(1 << 20, 'kiln ');
  const run = async (d: NodeJS.ReadWriteStream | import('node:stream').Duplex) => {
    const chunks: Buffer[] = [];
    const done = pipeline(Readable.from([input]), d as import('node:stream').Duplex, async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) chunks.push(c);
    });
    await done;
    return Buffer.concat(chunks);
  };
  assert.deepEqual(await run(compressor('zstd', 5)), await run(compressor('zstd', 5)));
  const gz = await run(compressor('gzip'));
  assert.deepEqual(gz, await run(compressor('gzip')));
  assert.equal(gz.readUInt32LE(4), 0, 'gzip header has no mtime');
  assert.equal(gz[3]! & 0x08, 0, 'gzip header has no file name');
  await assert.rejects(run(spawnFilter('xz', ['-dc'])), KilnError);
});
