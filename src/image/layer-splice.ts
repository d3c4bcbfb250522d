// Layer tars of incremental COPYs (src/worker/file/reuse.ts) made from the previous layer's
// bytes. A file the new snapshot holds exactly as the previous one did (same path, digest,
// owner, mode, no xattrs, same mtime stamp, archived under the same SOURCE_DATE_EPOCH) has the
// same tar entry in both layers, so the writer copies that entry from the previous layer's tar
// instead of listing the file's xattrs and reading it. The previous tar must have its recorded
// size; anything that does not fit leaves the writer on its ordinary path.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { Store, SnapshotMeta } from '../store/store.js';
import { readCopyManifest } from '../store/copy-manifest.js';
import { decodePaxBytes, headersModule } from '../util/tar/pax.js';

/** Previous tars bigger than this are not held in memory to splice from. */
const MAX_SPLICE_TAR = 64 << 20;

/** A turn of the event loop for the rest of the process (this runs beside later steps). */
function breather(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Entries (tar name -> header, any PAX header before it, body and padding) that the layer of
 * `snapshotId` can take from its lineage's previous layer as they are; undefined when none.
 */
export async function spliceableEntries(store: Store, snapshotId: string, tarEpoch: number | null): Promise<Map<string, Buffer> | undefined> {
  const mine = readCopyManifest(store, snapshotId);
  if (!mine?.from) return undefined;
  const prev = await store.getSnapshot(mine.from);
  if (!prev?.diffId || (prev.tarEpoch ?? null) !== tarEpoch || prev.size === undefined || prev.size > MAX_SPLICE_TAR) return undefined;
  const theirs = readCopyManifest(store, mine.from);
  if (!theirs) return undefined;
  await breather();
  const tar = previousTar(store, prev);
  if (!tar) return undefined;
  await breather();
  const out = new Map<string, Buffer>();
  try {
    for (const [name, entry] of plainFileEntries(tar)) {
      const a = mine.files['/' + name];
      const b = theirs.files['/' + name];
      if (a && b && a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3]) out.set(name, entry);
    }
  } catch {
    return undefined; // a header the codec refuses: the layer is written the ordinary way
  }
  return out.size > 0 ? out : undefined;
}

/**
 * The previous layer's tar from a stored blob, checked against its recorded size (as exports
 * check blobs: hashing it again cost more than the rest of the splice; `kiln store verify`
 * checks contents).
 */
function previousTar(store: Store, meta: SnapshotMeta): Buffer | undefined {
  const tryRead = (digest: string | undefined, gz: boolean): Buffer | undefined => {
    if (!digest) return undefined;
    try {
      const raw = readFileSync(store.blobPath(digest as `sha256:${string}`));
      const tar = gz ? gunzipSync(raw) : raw;
      return tar.length === meta.size ? tar : undefined;
    } catch {
      return undefined;
    }
  };
  return tryRead(meta.blobs?.uncompressed?.digest, false) ?? tryRead(meta.blobs?.gzip?.digest, true);
}

/** Regular-file entries of a kiln layer tar (ustar with PAX headers), by name: header through padding. */
function* plainFileEntries(tar: Buffer): Generator<[string, Buffer]> {
  let off = 0;
  let start = 0;
  let paxPath: string | undefined;
  while (off + 512 <= tar.length) {
    const header = scanHeader(tar.subarray(off, off + 512));
    if (!header) return; // the end-of-archive blocks
    const next = off + 512 + Math.ceil(header.size / 512) * 512;
    if (header.type === 'pax-header') {
      paxPath = decodePaxBytes(tar.subarray(off + 512, off + 512 + header.size)).path;
      off = next;
      continue;
    }
    if (header.type === 'file') yield [paxPath ?? header.name, tar.subarray(start, next)];
    paxPath = undefined;
    off = start = next;
  }
}

type ScannedHeader = { name: string; size: number; type: string };

const TYPE_BYTE = 156;
const USTAR_MAGIC = [0x75, 0x73, 0x74, 0x61, 0x72, 0]; // "ustar\0"

/**
 * Name, size and type of a header block as kiln's writer makes them (ustar, octal sizes), read
 * directly: tar-stream's full decode of every field was most of a 5,000-file splice. Anything
 * else goes through the codec.
 */
function scanHeader(block: Buffer): ScannedHeader | null {
  const type = block[TYPE_BYTE];
  let plain = (type === 0x30 || type === 0x78) && block[345] === 0; // a file or PAX record, no ustar prefix
  for (let i = 0; plain && i < USTAR_MAGIC.length; i++) plain = block[257 + i] === USTAR_MAGIC[i];
  let size = 0;
  for (let i = 124; plain && i < 136; i++) {
    const c = block[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) plain = false;
    else size = size * 8 + (c - 0x30);
  }
  if (!plain) {
    const h = headersModule().decode(block, 'utf-8', false);
    return h && { name: h.name, size: h.size ?? 0, type: h.type ?? 'file' };
  }
  let nameEnd = 0;
  while (nameEnd < 100 && block[nameEnd] !== 0) nameEnd++;
  return { name: block.toString('utf8', 0, nameEnd), size, type: type === 0x30 ? 'file' : 'pax-header' };
}
