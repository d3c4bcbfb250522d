// Tar archives made block by block, for tests of kiln's reader: they do not go through the
// code under test, and can hold what no tar tool writes (a symlink header counting a body).

import { encodePax } from '../../src/util/tar/pax.js';

export interface Fields {
  name: string;
  /** The type flag byte; '\0' for an old header's NUL. */
  type: string;
  size?: number;
  mode?: number;
  mtime?: number;
  linkname?: string;
}

const oct = (n: number, width: number) => `${n.toString(8).padStart(width, '0')}\0`;

export function header(f: Fields): Buffer {
  const b = Buffer.alloc(512);
  b.write(f.name, 0, 100, 'latin1');
  b.write(oct(f.mode ?? 0o644, 7), 100, 'ascii');
  b.write(oct(0, 7), 108, 'ascii');
  b.write(oct(0, 7), 116, 'ascii');
  b.write(oct(f.size ?? 0, 11), 124, 'ascii');
  b.write(oct(f.mtime ?? 0, 11), 136, 'ascii');
  if (f.type !== '\0') b.write(f.type, 156, 'ascii');
  if (f.linkname) b.write(f.linkname, 157, 100, 'latin1');
  b.write('ustar\0' + '00', 257, 'ascii');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

export function body(content: Buffer | string): Buffer {
  const bytes = Buffer.from(content);
  return Buffer.concat([bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512)]);
}

export function entry(f: Fields, content: Buffer | string = ''): Buffer {
  const bytes = Buffer.from(content);
  return Buffer.concat([header({ ...f, size: f.size ?? bytes.length }), body(bytes)]);
}

export const END = Buffer.alloc(1024);

/** An archive of the cases where Go's reader and tar-stream's part ways. */
export function goSemanticsArchive(): Buffer {
  const global = encodePax([['path', 'global-name'], ['mtime', '5']]);
  const local = encodePax([['path', 'from-pax'], ['mtime', '1700000000.25']]);
  const overridden = encodePax([['path', 'pax-loses']]);
  return Buffer.concat([
    entry({ name: 'pax_global_header', type: 'g' }, global),
    entry({ name: 'PaxHeaders/short', type: 'x' }, local),
    entry({ name: 'short', type: '0', mtime: 1_600_000_000 }, 'pax file'),
    // A symlink whose header counts 3 bytes it has no body for: the next header follows at once.
    header({ name: 'link', type: '2', size: 3, linkname: 'from-pax' }),
    entry({ name: 'PaxHeaders/long', type: 'x' }, overridden),
    entry({ name: '././@LongLink', type: 'L' }, 'gnu-wins\0'),
    entry({ name: 'gnu-stand-in', type: '0' }, 'named by GNU'),
    header({ name: 'olddir/', type: '\0', mode: 0o755 }),
    entry({ name: 'PaxHeaders/global-check', type: 'x' }, encodePax([['comment', 'a local header of its own']])),
    entry({ name: 'last', type: '0', mtime: 1_600_000_000 }, 'the end'),
    END,
  ]);
}
