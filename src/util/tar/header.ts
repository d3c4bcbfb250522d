// One tar entry's header blocks and padding, as tar-stream's pack would write them: shared by
// the layer writer (write.ts) and the named-file archives of exports (archive.ts).

import { encodeUstar, headersModule } from './pax.js';

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
