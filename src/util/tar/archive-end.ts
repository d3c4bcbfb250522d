// Where a tar archive ends, as Go's archive/tar (Docker's and BuildKit's extractor) decides it:
// at two zero blocks in a row, whatever follows them. tar-stream instead skips zero blocks and
// reads on, so bytes after the end (a tool's padding of garbage, a second archive appended with
// `cat`) became an error or extra entries. This transform sits in front of tar-stream, follows the
// archive's headers to know which blocks are headers, and passes nothing after the end.
//
// A zero block followed by a header is what Go refuses ("invalid tar header"), and so does kiln.
// Entry sizes follow tar-stream's reading (a directory has no body; a PAX `size` overrides the
// header's), so that both agree on where each header is.

import { Transform, type TransformCallback } from 'node:stream';
import { BLOCK, END_OF_ARCHIVE } from './header.js';
import { decodePaxBytes, headersModule, type HeadersModule } from './pax.js';

const enum At {
  Header,
  Body,
  End,
}

const ZERO_BLOCK = END_OF_ARCHIVE.subarray(0, BLOCK);

/** Longer PAX bodies are refused by tar-stream anyway ("Header exceeds max size"). */
const MAX_PAX_BODY = 1 << 20;

/** Passes a tar archive through up to its end blocks, and nothing after them. */
export class ArchiveEnd extends Transform {
  private at = At.Header;
  /** A header block gathered across chunks. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes of the current body, padding included, still to pass. */
  private bodyLeft = 0;
  private bodyType = '';
  /** The body of a PAX header being read, for the `size` it may give the next entry. */
  private paxBody: Buffer[] | undefined;
  private paxBodyBytes = 0;
  private paxSize: number | undefined;
  private globalPaxSize: number | undefined;
  private zeroBlocks = 0;
  private offset = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let pos = 0;
    while (pos < chunk.length && this.at !== At.End) {
      if (this.at === At.Body) {
        const n = Math.min(this.bodyLeft, chunk.length - pos);
        const part = chunk.subarray(pos, pos + n);
        this.push(part);
        if (this.paxBody && this.paxBodyBytes < MAX_PAX_BODY) {
          this.paxBody.push(part);
          this.paxBodyBytes += n;
        }
        pos += n;
        this.offset += n;
        this.bodyLeft -= n;
        if (this.bodyLeft === 0) this.endBody();
        continue;
      }
      const n = Math.min(BLOCK - this.pendingBytes, chunk.length - pos);
      this.pending.push(chunk.subarray(pos, pos + n));
      this.pendingBytes += n;
      pos += n;
      if (this.pendingBytes < BLOCK) break;
      const block = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      const error = this.header(block);
      if (error) return done(error);
      this.offset += BLOCK;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    // A partial header block is tar-stream's to report ("Unexpected end of data").
    if (this.pendingBytes > 0) this.push(Buffer.concat(this.pending));
    done();
  }

  /** Reads one header block and what follows it; an Error when the archive is bad. */
  private header(block: Buffer): Error | undefined {
    if (block.equals(ZERO_BLOCK)) {
      this.zeroBlocks++;
      if (this.zeroBlocks === 2) this.at = At.End;
      else this.push(block);
      return undefined;
    }
    if (this.zeroBlocks > 0) return new Error(`a header at byte ${this.offset} follows a single zero block (invalid tar header)`);
    this.push(block);
    let header: ReturnType<HeadersModule['decode']>;
    try {
      // tar-stream's own codec, as its extractor will read this block.
      header = headersModule().decode(block, 'latin1', true);
    } catch {
      return undefined; // a bad checksum: tar-stream reports it on this very block
    }
    const type = header!.type;
    let size = header!.size;
    if (type === 'pax-header' || type === 'pax-global-header') {
      this.paxBody = [];
      this.paxBodyBytes = 0;
    } else if (type !== 'gnu-long-path' && type !== 'gnu-long-link-path') {
      size = type === 'directory' ? 0 : (this.paxSize ?? size);
      this.paxSize = undefined;
    }
    this.bodyType = type;
    this.bodyLeft = Math.ceil(size / BLOCK) * BLOCK;
    if (this.bodyLeft > 0) this.at = At.Body;
    else this.endBody();
    return undefined;
  }

  private endBody(): void {
    this.at = At.Header;
    if (!this.paxBody) return;
    const records = decodePaxBytes(Buffer.concat(this.paxBody));
    this.paxBody = undefined;
    const size = records.size !== undefined && /^\d+$/.test(records.size) ? Number(records.size) : undefined;
    // tar-stream takes a global header's size only into an entry that has a PAX header of its own.
    if (this.bodyType === 'pax-global-header') this.globalPaxSize = size ?? this.globalPaxSize;
    else this.paxSize = size ?? this.globalPaxSize;
  }
}
