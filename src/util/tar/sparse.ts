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

import { ftruncateSync, writeSync } from 'node:fs';

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

/**
 * Writes a sparse entry's body into the file `fd` as the reader hands it over, piece by piece:
 * each piece of data at its offset, then the real size.
 */
export class SparseWriter {
  private map: Array<[number, number]> | undefined;
  /** 1.0: the map's text so far, read a block at a time. */
  private mapText = '';
  private mapHead: Buffer[] = [];
  private mapHeadBytes = 0;
  private piece = 0;
  private doneInPiece = 0;

  constructor(
    private readonly fd: number,
    private readonly entry: SparseEntry,
    private readonly fail: (why: string) => never,
  ) {
    this.map = entry.map;
  }

  data(chunk: Buffer): void {
    let pos = 0;
    if (!this.map) pos = this.readMap(chunk);
    const map = this.map;
    if (!map) return;
    while (pos < chunk.length) {
      while (this.piece < map.length && map[this.piece]![1] === this.doneInPiece) this.nextPiece();
      if (this.piece >= map.length) this.fail('sparse file with more data than its map holds');
      const [off, len] = map[this.piece]!;
      const n = Math.min(len - this.doneInPiece, chunk.length - pos);
      for (let w = 0; w < n; ) w += writeSync(this.fd, chunk, pos + w, n - w, off + this.doneInPiece + w);
      pos += n;
      this.doneInPiece += n;
    }
  }

  end(): void {
    const map = this.map;
    if (!map) this.fail('sparse file whose data ends before its map does');
    while (this.piece < map.length && map[this.piece]![1] === this.doneInPiece) this.nextPiece();
    if (this.piece < map.length) this.fail('sparse file whose data ends before its map does');
    ftruncateSync(this.fd, this.entry.realSize);
  }

  private nextPiece(): void {
    this.piece++;
    this.doneInPiece = 0;
  }

  /** 1.0: takes whole blocks of decimal lines until the count and its pairs are read; returns where data starts in `chunk`. */
  private readMap(chunk: Buffer): number {
    let pos = 0;
    while (!this.map && pos < chunk.length) {
      const n = Math.min(512 - this.mapHeadBytes, chunk.length - pos);
      this.mapHead.push(chunk.subarray(pos, pos + n));
      this.mapHeadBytes += n;
      pos += n;
      if (this.mapHeadBytes < 512) break;
      this.mapText += Buffer.concat(this.mapHead).toString('latin1');
      this.mapHead = [];
      this.mapHeadBytes = 0;
      const lines = this.mapText.split('\n');
      const n1 = count(lines[0], 'piece count', this.fail);
      if (n1 > MAX_PIECES) this.fail(`sparse file of ${n1} pieces`);
      if (lines.length - 1 >= 1 + 2 * n1) this.map = pieces(lines.slice(1, 1 + 2 * n1), this.entry.realSize, this.fail);
      else if (this.mapText.length >= MAX_PIECES * 8) this.fail('sparse file whose map does not end');
    }
    return pos;
  }
}
