// One tar entry's header blocks and padding, as tar-stream's pack would write them (with the
// fields its codec gets wrong mended): shared by the layer writer (write.ts) and the named-file
// archives of exports (archive.ts).

import { headersModule } from './pax.js';

export const BLOCK = 512;
const ZEROS = Buffer.alloc(2 * BLOCK);

/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE = ZEROS;

/** A ustar header as tar-stream's codec takes it (kiln writes its PAX records itself). */
export interface TarHeader {
  name: string;
  type: 'file' | 'link' | 'symlink' | 'directory' | 'character-device' | 'block-device' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

/** The zeros that fill a body of `size` bytes up to a whole block, or undefined. */
export function padding(size: number): Buffer | undefined {
  const rest = size % BLOCK;
  return rest === 0 ? undefined : ZEROS.subarray(0, BLOCK - rest);
}

/** A header block's checksum: the sum of its bytes, the checksum field counted as spaces. */
export function headerChecksum(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum;
}

/**
 * tar-stream's codec's encode, with two kinds of field mended. The codec truncates the mtime's
 * seconds to 32 bits, so a time after January 2038 came out negative (garbage digits) or clamped
 * to 2242: the field takes eleven octal digits (to 2242). And it writes device numbers in six
 * digits (262143 at most) where ustar has room for seven (a Linux minor has 20 bits). The
 * checksum is then computed again, as the codec does.
 */
export function encodeUstar(header: Record<string, unknown>): Buffer | null {
  const buf = headersModule().encode(header);
  if (!buf) return null;
  const secs = Math.floor((header.mtime as Date).getTime() / 1000);
  const major = Number(header.devmajor ?? 0);
  const minor = Number(header.devminor ?? 0);
  const SIX_DIGITS = 0o777777;
  if (secs <= 0x7fffffff && major <= SIX_DIGITS && minor <= SIX_DIGITS) return buf;
  if (secs > 0x7fffffff) buf.write(`${Math.min(secs, 0o77777777777).toString(8).padStart(11, '0')} `, 136, 'ascii');
  for (const [off, v] of [[329, major], [337, minor]] as const) {
    if (v > SIX_DIGITS) buf.write(`${Math.min(v, 0o7777777).toString(8).padStart(7, '0')}\0`, off, 'ascii');
  }
  buf.write(`${headerChecksum(buf).toString(8).padStart(6, '0')} `, 148, 'ascii');
  return buf;
}

/**
 * The 512-byte header, body and padding of a PAX extended header, for pushing straight into a
 * tar-stream pack between two entries (tar-stream's pack gives a `pax-header` entry no body).
 */
export function paxHeaderBlocks(body: Buffer, mtime: Date): Buffer {
  const header = encodeUstar({ name: 'PaxHeader', type: 'pax-header', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime });
  if (!header) throw new Error('cannot encode a PAX header');
  return Buffer.concat([header, body, padding(body.length) ?? Buffer.alloc(0)]);
}

/**
 * The header block(s) tar-stream's pack writes for `header`, with its PAX fallback when the
 * codec cannot fit the name. Unlike pack, a mode of 0 stays 0: an entry with no permission bits
 * (Fedora's /etc/shadow) must not become world-readable.
 */
export function headerBlocks(header: TarHeader): Buffer[] {
  const h = { ...header };
  if (!h.size || h.type === 'symlink') h.size = 0;
  if (!h.uid) h.uid = 0;
  if (!h.gid) h.gid = 0;
  const codec = headersModule();
  const plain = encodeUstar(h as unknown as Record<string, unknown>);
  if (plain) return [plain];
  const body = codec.encodePax({ name: h.name, linkname: h.linkname });
  const paxHeader = { ...h, name: 'PaxHeader', size: body.length, type: 'pax-header', linkname: h.linkname && 'PaxHeader' };
  const out = [encodeUstar(paxHeader)!, body];
  const pad = padding(body.length);
  if (pad) out.push(pad);
  out.push(encodeUstar({ ...paxHeader, size: h.size, type: h.type })!);
  return out;
}
