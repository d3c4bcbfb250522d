// PAX extended headers, built and read as bytes. tar-stream handles ustar and its own PAX path
// records, but decodes every PAX value as UTF-8, which mangles binary xattr values such as
// security.capability; so kiln writes its PAX records itself and reads xattr values as latin1.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
// Loads tar-stream's own header codec, which the bundle then exposes (scripts/bundle.mjs).
import 'tar-stream';

/** One `"%d %s=%s\n"` record; the leading length counts itself. */
function record(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length > len) len++;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

export function encodePax(records: Array<[string, Buffer | string]>): Buffer {
  return Buffer.concat(records.map(([k, v]) => record(k, typeof v === 'string' ? Buffer.from(v, 'utf8') : v)));
}

export const XATTR_PREFIX = 'SCHILY.xattr.';

/**
 * Parses a PAX body. Values of xattr records come back as latin1 strings (one char per byte) so
 * Buffer.from(v, 'latin1') restores the exact bytes, and so do `path`, `linkpath` and
 * `GNU.sparse.name` with `rawNames` (names need not be UTF-8); every other value is UTF-8.
 */
export function decodePaxBytes(buf: Buffer, rawNames = false): Record<string, string> {
  const out: Record<string, string> = {};
  // A sparse file of format 0.0 repeats these two, one pair per piece (util/tar/sparse.ts).
  const sparsePieces: string[] = [];
  let sparseInOrder = true;
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(buf.subarray(off, sp).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0 || off + len > buf.length) break;
    const rec = buf.subarray(sp + 1, off + len - 1); // drop the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq >= 0) {
      const key = rec.subarray(0, eq).toString('utf8');
      const val = rec.subarray(eq + 1);
      const bytes = key.startsWith(XATTR_PREFIX) || (rawNames && (key === 'path' || key === 'linkpath' || key === 'GNU.sparse.name'));
      out[key] = val.toString(bytes ? 'latin1' : 'utf8');
      if (key === 'GNU.sparse.offset' || key === 'GNU.sparse.numbytes') {
        sparseInOrder &&= (key === 'GNU.sparse.offset') === (sparsePieces.length % 2 === 0);
        sparsePieces.push(out[key]);
      }
    }
    off += len;
  }
  if (sparsePieces.length > 0) out['GNU.sparse.map'] = sparseInOrder ? sparsePieces.join(',') : 'out of order';
  return out;
}

/** A header block as the codec reads it; `type` is null for a type flag it does not know. */
export interface DecodedHeader {
  name: string;
  type: string | null;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  linkname: string | null;
  devmajor: number;
  devminor: number;
}

export interface HeadersModule {
  /** null for an all-zero block (the end of the archive); throws on a bad checksum. */
  decode: (buf: Buffer, filenameEncoding: string, allowUnknownFormat: boolean) => DecodedHeader | null;
  encode: (header: Record<string, unknown>) => Buffer | null;
  encodePax: (opts: { name?: string; linkname?: string | null }) => Buffer;
}

let headers: HeadersModule | undefined;

/** Where the bundle puts the header codec its tar-stream uses (scripts/bundle.mjs). */
const BUNDLED_HEADERS = Symbol.for('kiln.tar-stream.headers');

/**
 * tar-stream's header codec, which kiln's reader (reader.ts) and writers use: the bundle's own
 * copy in the bundle, else the module file (not in tar-stream's package exports, so loaded by
 * path).
 */
export function headersModule(): HeadersModule {
  if (headers) return headers;
  const bundled = (globalThis as Record<symbol, unknown>)[BUNDLED_HEADERS] as HeadersModule | undefined;
  if (bundled) return (headers = bundled);
  const require = createRequire(import.meta.url);
  headers = require(join(dirname(require.resolve('tar-stream')), 'headers.js')) as HeadersModule;
  return headers;
}
