// Layer tars of incremental COPYs (src/worker/file/reuse.ts) made from the previous layer's
// bytes. A file the new snapshot holds exactly as the previous one did (same path, digest,
// owner, mode, no xattrs, same mtime stamp, archived under the same SOURCE_DATE_EPOCH) has the
// same tar entry in both layers, so the writer copies that entry from the previous layer's tar
// instead of listing the file's xattrs and reading it. The previous tar is checked against its
// diffID first; anything that does not fit leaves the writer on its ordinary path.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Store, SnapshotMeta } from '../store/store.js';
import { REUSE_MANIFEST, type CopyManifest } from '../store/copy-manifest.js';

/** Previous tars bigger than this are not held in memory to splice from. */
const MAX_SPLICE_TAR = 64 << 20;

/** A turn of the event loop for the rest of the process (this runs beside later steps). */
function breather(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function readManifest(store: Store, id: string): CopyManifest | undefined {
  try {
    const m = JSON.parse(readFileSync(join(store.snapshotDir(id), REUSE_MANIFEST), 'utf8')) as CopyManifest;
    return m.v === 1 && typeof m.files === 'object' && m.files !== null ? m : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Entries (tar name -> header, any PAX header before it, body and padding) that the layer of
 * `snapshotId` can take from its lineage's previous layer as they are; undefined when none.
 */
export async function spliceableEntries(store: Store, snapshotId: string, tarEpoch: number | null): Promise<Map<string, Buffer> | undefined> {
  const mine = readManifest(store, snapshotId);
  if (!mine?.from) return undefined;
  const prev = await store.getSnapshot(mine.from);
  if (!prev?.diffId || (prev.tarEpoch ?? null) !== tarEpoch || prev.size === undefined || prev.size > MAX_SPLICE_TAR) return undefined;
  const theirs = readManifest(store, mine.from);
  if (!theirs) return undefined;
  await breather();
  const tar = previousTar(store, prev);
  if (!tar) return undefined;
  await breather();
  const out = new Map<string, Buffer>();
  for (const [name, entry] of plainFileEntries(tar)) {
    const a = mine.files['/' + name];
    const b = theirs.files['/' + name];
    if (a && b && a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3]) out.set(name, entry);
  }
  return out.size > 0 ? out : undefined;
}

/** The previous layer's tar from a stored blob, checked against its diffID. */
function previousTar(store: Store, meta: SnapshotMeta): Buffer | undefined {
  const tryRead = (digest: string | undefined, gz: boolean): Buffer | undefined => {
    if (!digest) return undefined;
    try {
      const raw = readFileSync(store.blobPath(digest as `sha256:${string}`));
      const tar = gz ? gunzipSync(raw) : raw;
      return `sha256:${createHash('sha256').update(tar).digest('hex')}` === meta.diffId ? tar : undefined;
    } catch {
      return undefined;
    }
  };
  return tryRead(meta.blobs?.uncompressed?.digest, false) ?? tryRead(meta.blobs?.gzip?.digest, true);
}

function octal(buf: Buffer, off: number, len: number): number {
  let n = 0;
  for (let i = off; i < off + len; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x37) break;
    n = n * 8 + (c - 0x30);
  }
  return n;
}

function cString(buf: Buffer, off: number, len: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

/** The PAX `path` record, if any. */
function paxPath(body: Buffer): string | undefined {
  let off = 0;
  while (off < body.length) {
    const sp = body.indexOf(0x20, off);
    if (sp < 0) return undefined;
    const len = parseInt(body.toString('ascii', off, sp), 10);
    if (!Number.isFinite(len) || len <= 0) return undefined;
    const rec = body.toString('utf8', sp + 1, off + len - 1);
    if (rec.startsWith('path=')) return rec.slice(5);
    off += len;
  }
  return undefined;
}

/** Regular-file entries of a kiln layer tar (ustar with PAX headers), by name. */
function* plainFileEntries(tar: Buffer): Generator<[string, Buffer]> {
  let off = 0;
  let start = 0;
  let longName: string | undefined;
  while (off + 512 <= tar.length) {
    if (tar[off] === 0 && tar[off + 156] === 0) return; // the end-of-archive blocks
    const type = tar[off + 156]!;
    const size = octal(tar, off + 124, 12);
    const next = off + 512 + Math.ceil(size / 512) * 512;
    if (type === 0x78 /* x: PAX header of the next entry */) {
      longName = paxPath(tar.subarray(off + 512, off + 512 + size));
      off = next;
      continue;
    }
    const prefix = cString(tar, off + 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${cString(tar, off, 100)}` : cString(tar, off, 100));
    if (type === 0x30 /* '0' */) yield [name, tar.subarray(start, next)];
    longName = undefined;
    off = start = next;
  }
}
