// Sparse files in PAX archives (`tar --sparse --format=posix`), read as Go's archive/tar reads
// them, so that ADD of such an archive gives what docker build gives: the file at its real size,
// its holes left as holes. Three formats carry the map of the data's pieces:
// - 0.0: repeated GNU.sparse.offset / GNU.sparse.numbytes records (pax.ts gathers them into
//   GNU.sparse.map);
// - 0.1: GNU.sparse.map, "offset,size,offset,size,...";
// - 1.0: GNU.sparse.major=1, and the map at the start of the body, in decimal lines (the count,
//   then offset and size of each piece), padded to a 512-byte block.
// The pieces' data follows, in map order. GNU's own sparse entries (type 'S') are not read:
// docker build refuses them too.

import type { FileHandle } from 'node:fs/promises';

export interface SparseEntry {
  /** The file's real name, when the header's is GNU tar's `GNUSparseFile.PID/...` stand-in. */
  name?: string;
  realSize: number;
  /** Offset and size of each piece of data; absent when the body starts with the map (1.0). */
  map?: Array<[number, number]>;
}

/** Beyond this, a map is not believed: Go's reader stops at a similar bound. */
const MAX_PIECES = 1 << 20;

function count(v: string | undefined, what: string, fail: (why: string) => never): number {
  if (v === undefined || !/^\d+$/.test(v)) fail(`sparse file with a bad ${what} (${JSON.stringify(v ?? '')})`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) fail(`sparse file with a bad ${what} (${v})`);
  return n;
}

function pieces(numbers: string[], realSize: number, fail: (why: string) => never): Array<[number, number]> {
  if (numbers.length % 2 !== 0) fail('sparse file whose map has an offset without a size');
  const map: Array<[number, number]> = [];
  let end = 0;
  for (let i = 0; i < numbers.length; i += 2) {
    const off = count(numbers[i], 'map offset', fail);
    const len = count(numbers[i + 1], 'map size', fail);
    if (off < end || off + len > realSize) fail(`sparse file whose map piece ${off},${len} overlaps another or passes its size ${realSize}`);
    end = off + len;
    map.push([off, len]);
  }
  return map;
}

/** The entry's sparse layout from its PAX records, or undefined for an ordinary file. */
export function sparseEntry(pax: Record<string, string> | null | undefined, fail: (why: string) => never): SparseEntry | undefined {
  if (!pax) return undefined;
  const name = pax['GNU.sparse.name'];
  if (pax['GNU.sparse.major'] !== undefined) {
    if (pax['GNU.sparse.major'] !== '1' || pax['GNU.sparse.minor'] !== '0') fail(`sparse format ${pax['GNU.sparse.major']}.${pax['GNU.sparse.minor'] ?? ''} is not known`);
    return { name, realSize: count(pax['GNU.sparse.realsize'], 'real size', fail) };
  }
  if (pax['GNU.sparse.size'] === undefined && pax['GNU.sparse.map'] === undefined) return undefined;
  const realSize = count(pax['GNU.sparse.size'], 'real size', fail);
  const numbers = pax['GNU.sparse.map'] === '' || pax['GNU.sparse.map'] === undefined ? [] : pax['GNU.sparse.map'].split(',');
  const map = pieces(numbers, realSize, fail);
  if (pax['GNU.sparse.numblocks'] !== undefined && count(pax['GNU.sparse.numblocks'], 'piece count', fail) !== map.length) {
    fail('sparse file whose map does not have the pieces it counts');
  }
  return { name, realSize, map };
}

/** Reads a body in pieces of the sizes asked for. */
class BodyReader {
  private rest: Buffer = Buffer.alloc(0);
  private ended = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(body: AsyncIterable<Buffer>) {
    this.it = body[Symbol.asyncIterator]();
  }

  /** At most `max` bytes; an empty buffer once the body is over. */
  async upTo(max: number): Promise<Buffer> {
    while (this.rest.length === 0 && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else this.rest = r.value;
    }
    const out = this.rest.subarray(0, max);
    this.rest = this.rest.subarray(out.length);
    return out;
  }
}

/** Writes a sparse entry's body into `fh`: each piece at its offset, then the real size. */
export async function writeSparse(fh: FileHandle, body: AsyncIterable<Buffer>, entry: SparseEntry, fail: (why: string) => never): Promise<void> {
  const reader = new BodyReader(body);
  const exactly = async (n: number): Promise<Buffer> => {
    const parts: Buffer[] = [];
    for (let got = 0; got < n; ) {
      const b = await reader.upTo(n - got);
      if (b.length === 0) fail('sparse file whose data ends before its map does');
      parts.push(b);
      got += b.length;
    }
    return Buffer.concat(parts);
  };
  let map = entry.map;
  if (!map) {
    // 1.0: whole blocks of decimal lines, until the count and its pairs are read.
    let text = '';
    for (;;) {
      text += (await exactly(512)).toString('latin1');
      const lines = text.split('\n');
      const n = count(lines[0], 'piece count', fail);
      if (n > MAX_PIECES) fail(`sparse file of ${n} pieces`);
      if (lines.length - 1 >= 1 + 2 * n) {
        map = pieces(lines.slice(1, 1 + 2 * n), entry.realSize, fail);
        break;
      }
      if (text.length >= MAX_PIECES * 8) fail('sparse file whose map does not end');
    }
  }
  for (const [off, len] of map) {
    for (let done = 0; done < len; ) {
      const b = await reader.upTo(len - done);
      if (b.length === 0) fail('sparse file whose data ends before its map does');
      for (let w = 0; w < b.length; ) w += (await fh.write(b, w, b.length - w, off + done + w)).bytesWritten;
      done += b.length;
    }
  }
  if ((await reader.upTo(1)).length > 0) fail('sparse file with more data than its map holds');
  await fh.truncate(entry.realSize);
}
