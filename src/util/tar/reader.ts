// A tar reader that is handed the archive's bytes as they come and hands each entry's header and
// body pieces to its caller, synchronously. It reads as Go's archive/tar does (Docker's and
// BuildKit's extractor), where the two differ from tar-stream's extractor, which kiln used before:
// - the archive ends at two zero blocks in a row, whatever follows them; a header after a single
//   zero block is refused ("invalid tar header");
// - links, symlinks, devices, folders and fifos have no body, whatever size their header says;
// - a PAX header's path, linkpath, size, uid, gid and mtime apply to the next entry, and a GNU
//   long name or link name overrides the PAX one; global PAX headers are read and ignored;
// - an old header of type NUL whose name ends in `/` is a folder.
// Being synchronous is most of its point: tar-stream made a stream per entry, which cost more than
// writing the files did for a base image of 9,000 small ones.
//
// Names are latin1 strings, one char per byte (see extract.ts).

import { BLOCK, END_OF_ARCHIVE } from './header.js';
import { decodePaxBytes, headersModule, type DecodedHeader } from './pax.js';

/** A header as the codec reads it, with what PAX and GNU headers before it say; `size` is the body's. */
export interface TarEntryHeader extends DecodedHeader {
  /** The entry's own PAX records, when it has a PAX header. */
  pax: Record<string, string> | null;
}

/** Where an entry's body goes, piece by piece. */
export interface EntrySink {
  data(chunk: Buffer): void;
  end(): void;
  /** The archive failed before end(): release what the sink holds. */
  abort?(): void;
}

const ZERO_BLOCK = END_OF_ARCHIVE.subarray(0, BLOCK);
/** PAX and GNU long-name bodies longer than this are refused, as tar-stream and Go bound them. */
const MAX_META_BODY = 1 << 20;
const HEADER_ONLY = new Set(['link', 'symlink', 'character-device', 'block-device', 'directory', 'fifo']);
const META_TYPES = new Set(['pax-header', 'pax-global-header', 'gnu-long-path', 'gnu-long-link-path']);

const enum At {
  Header,
  Body,
  Padding,
  End,
}

export class TarReader {
  private at = At.Header;
  /** The header block being gathered across chunks. */
  private block: Buffer[] = [];
  private blockBytes = 0;
  private offset = 0;
  private zeroBlocks = 0;
  private bodyLeft = 0;
  private paddingLeft = 0;
  private sink: EntrySink | undefined;
  /** The body of a PAX or GNU long-name header being read, and its type. */
  private meta: { type: string; parts: Buffer[] } | undefined;
  private pax: Record<string, string> | null = null;
  private longName: string | undefined;
  private longLink: string | undefined;

  constructor(private readonly onEntry: (header: TarEntryHeader) => EntrySink | undefined) {}

  /** True once the end blocks are read: what follows is not the archive's. */
  get ended(): boolean {
    return this.at === At.End;
  }

  /** Reads `chunk`; throws an Error for a bad archive, or what the entry handler throws. */
  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && this.at !== At.End) {
      if (this.at === At.Body) {
        const n = Math.min(this.bodyLeft, chunk.length - pos);
        const part = chunk.subarray(pos, pos + n);
        if (this.meta) this.meta.parts.push(part);
        else this.sink?.data(part);
        pos += n;
        this.offset += n;
        this.bodyLeft -= n;
        if (this.bodyLeft === 0) this.endBody();
      } else if (this.at === At.Padding) {
        const n = Math.min(this.paddingLeft, chunk.length - pos);
        pos += n;
        this.offset += n;
        this.paddingLeft -= n;
        if (this.paddingLeft === 0) this.at = At.Header;
      } else {
        const n = Math.min(BLOCK - this.blockBytes, chunk.length - pos);
        // A whole block inside the chunk is read where it lies, without a copy.
        if (n === BLOCK) this.header(chunk.subarray(pos, pos + BLOCK));
        else {
          this.block.push(Buffer.from(chunk.subarray(pos, pos + n)));
          this.blockBytes += n;
          if (this.blockBytes === BLOCK) {
            const block = Buffer.concat(this.block);
            this.block = [];
            this.blockBytes = 0;
            this.header(block);
          }
        }
        pos += n;
        this.offset += n;
      }
    }
  }

  /** The input is over: throws when it stopped inside a header or a body. */
  finish(): void {
    if (this.at === At.End || (this.at === At.Header && this.blockBytes === 0)) return;
    throw new Error(`unexpected end of data at byte ${this.offset} (the archive is truncated)`);
  }

  /** The archive failed: lets the entry being written go. */
  abort(): void {
    const sink = this.sink;
    this.sink = undefined;
    sink?.abort?.();
  }

  private header(block: Buffer): void {
    const at = this.offset - this.blockBytes;
    if (block.equals(ZERO_BLOCK)) {
      if (++this.zeroBlocks === 2) this.at = At.End;
      return;
    }
    if (this.zeroBlocks > 0) throw new Error(`a header at byte ${at} follows a single zero block (invalid tar header)`);
    const h = headersModule().decode(block, 'latin1', true);
    if (h === null) throw new Error(`a header at byte ${at} is blank (invalid tar header)`);
    if (!(h.size >= 0)) throw new Error(`a header at byte ${at} has an invalid size`);
    if (h.type !== null && META_TYPES.has(h.type)) {
      if (h.size > MAX_META_BODY) throw new Error(`a ${h.type} header at byte ${at} of ${h.size} bytes (more than ${MAX_META_BODY})`);
      this.meta = { type: h.type, parts: [] };
      this.startBody(h.size);
      return;
    }
    const header: TarEntryHeader = { ...h, pax: this.pax };
    if (this.pax) applyPax(header, this.pax, at);
    if (this.longName !== undefined) header.name = this.longName;
    if (this.longLink !== undefined) header.linkname = this.longLink;
    this.pax = null;
    this.longName = undefined;
    this.longLink = undefined;
    if (block[156] === 0 && header.name.endsWith('/')) header.type = 'directory';
    if (header.type !== null && HEADER_ONLY.has(header.type)) header.size = 0;
    this.sink = this.onEntry(header);
    this.startBody(header.size);
  }

  private startBody(size: number): void {
    this.bodyLeft = size;
    this.paddingLeft = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size > 0) this.at = At.Body;
    else this.endBody();
  }

  private endBody(): void {
    this.at = this.paddingLeft > 0 ? At.Padding : At.Header;
    const meta = this.meta;
    if (meta) {
      this.meta = undefined;
      const body = Buffer.concat(meta.parts);
      if (meta.type === 'pax-header') this.pax = decodePaxBytes(body, true);
      else if (meta.type === 'gnu-long-path') this.longName = cString(body);
      else if (meta.type === 'gnu-long-link-path') this.longLink = cString(body);
      // A global header's records would apply to every later entry; Go hands them to its
      // caller, and Docker's extractor ignores them, so kiln does too.
      return;
    }
    const sink = this.sink;
    this.sink = undefined;
    sink?.end();
  }
}

function applyPax(header: TarEntryHeader, pax: Record<string, string>, at: number): void {
  if (pax.path !== undefined) header.name = pax.path;
  if (pax.linkpath !== undefined) header.linkname = pax.linkpath;
  if (pax.size !== undefined) {
    if (!/^\d{1,16}$/.test(pax.size) || !Number.isSafeInteger(Number(pax.size))) throw new Error(`the entry at byte ${at} has a bad PAX size ${JSON.stringify(pax.size)}`);
    header.size = Number(pax.size);
  }
  const uid = paxId(pax.uid);
  if (uid !== undefined) header.uid = uid;
  const gid = paxId(pax.gid);
  if (gid !== undefined) header.gid = gid;
  // Decimal seconds, to the millisecond a Date holds.
  const m = pax.mtime !== undefined ? /^(-?)(\d{1,15})(?:\.(\d+))?$/.exec(pax.mtime) : null;
  if (m) {
    const ms = Number(m[2]) * 1000 + Number((m[3] ?? '').slice(0, 3).padEnd(3, '0'));
    header.mtime = new Date(m[1] === '-' ? -ms : ms);
  }
}

/** An owner id beyond the ustar fields' reach, when the record holds a valid one. */
function paxId(v: string | undefined): number | undefined {
  return v !== undefined && /^\d{1,10}$/.test(v) && Number(v) <= 0xffffffff ? Number(v) : undefined;
}

/** A GNU long name: the body up to its first NUL, as bytes. */
function cString(body: Buffer): string {
  const nul = body.indexOf(0);
  return body.toString('latin1', 0, nul < 0 ? body.length : nul);
}
