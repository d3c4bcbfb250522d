// The previous layer of a COPY that ran again (worker/file/reuse.ts), for the writer and the
// hasher of its new layer. A file the new snapshot holds exactly as the previous one did (same
// path, digest, owner, mode, no xattrs, same mtime stamp, archived under the same
// SOURCE_DATE_EPOCH) has the same tar entry in both layers. So the writer takes that entry's
// bytes from the previous tar instead of listing the file's xattrs and reading it, and, while
// every entry so far is the previous tar's, writes nothing at all: the store copies that shared
// head of the previous blob in the kernel (util/tar/write.ts, store.ingestStream), and the hash
// resumes from the state saved in it (util/tar/hash.ts).
//
// The previous tar is found through the copy manifest's `from`, must have its recorded size and
// have been made by this writer's format; its bytes are trusted as the store's blobs are (`kiln
// store verify` checks them and the saved states). Anything that does not fit leaves the writer
// on its ordinary path.

import { closeSync, fstatSync, openSync } from 'node:fs';
import type { Store } from '../store/store.js';
import { readCopyManifest, type CopyManifest } from '../store/copy-manifest.js';
import type { PreviousTar } from '../util/tar/hash.js';
import { LAYER_TAR_FORMAT, type PreviousEntries, type TarSlot } from '../util/tar/write.js';
import { decodePaxBytes, headersModule } from '../util/tar/pax.js';
import { turn } from '../util/event-loop.js';
import { readFullAt } from '../util/fs.js';

export interface PreviousLayer extends PreviousTar, PreviousEntries {
  /** Unchanged regular files' entries, by tar name. */
  readonly slots: ReadonlyMap<string, TarSlot>;
  close(): void;
}

/** How much of the previous tar one read brings in: headers and small entries come in runs. */
const WINDOW = 1 << 20;

/** The previous layer of COPY snapshot `snapshotId`, when its tar is in the store as recorded. */
export async function previousLayerOf(store: Store, snapshotId: string, tarEpoch: number | null): Promise<PreviousLayer | undefined> {
  const mine = readCopyManifest(store, snapshotId);
  if (!mine?.from) return undefined;
  const prev = await store.getSnapshot(mine.from);
  if (!prev?.diffId || (prev.tarEpoch ?? null) !== tarEpoch || prev.tarFormat !== LAYER_TAR_FORMAT || prev.size === undefined) return undefined;
  const theirs = readCopyManifest(store, mine.from);
  if (!theirs) return undefined;
  const digest = prev.blobs?.uncompressed?.digest ?? prev.diffId;
  const path = store.blobPath(digest);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    if (fstatSync(fd).size !== prev.size) throw new Error('size');
    await turn(); // this runs beside later steps: let them in first
    const window = new TarWindow(fd, prev.size);
    const slots = unchangedSlots(window, prev.size, mine, theirs);
    const layer: PreviousLayer = {
      path,
      size: prev.size,
      digest: prev.diffId,
      checkpoints: prev.hashStates ?? [],
      slots,
      slot: (name) => slots.get(name),
      read: (offset, length) => window.read(offset, length),
      close: () => closeSync(fd),
    };
    return layer;
  } catch {
    closeSync(fd); // a header the codec refuses, or a blob not as recorded: the ordinary way
    return undefined;
  }
}

/** Reads the previous tar through a window of WINDOW bytes, mostly forward. */
class TarWindow {
  private buf = Buffer.alloc(0);
  private start = 0;

  constructor(
    private readonly fd: number,
    private readonly size: number,
  ) {}

  /** `length` bytes at `offset`, fewer only past the end of the tar. Never changed later. */
  read(offset: number, length: number): Buffer {
    const from = offset - this.start;
    if (from >= 0 && from + length <= this.buf.length) return this.buf.subarray(from, from + length);
    const want = Math.max(0, Math.min(Math.max(length, WINDOW), this.size - offset));
    const buf = Buffer.allocUnsafe(want);
    const got = readFullAt(this.fd, buf, offset);
    this.buf = buf.subarray(0, got);
    this.start = offset;
    return this.buf.subarray(0, Math.min(length, got));
  }
}

/** Entries of regular files that both manifests list alike: header (and any PAX before it) through padding. */
function unchangedSlots(tar: TarWindow, size: number, mine: CopyManifest, theirs: CopyManifest): Map<string, TarSlot> {
  const out = new Map<string, TarSlot>();
  let off = 0;
  let start = 0;
  let paxPath: string | undefined;
  while (off + 512 <= size) {
    const block = tar.read(off, 512);
    if (block.length < 512) break;
    const header = scanHeader(block);
    if (!header) break; // the end-of-archive blocks
    const next = off + 512 + Math.ceil(header.size / 512) * 512;
    if (header.type === 'pax-header') {
      paxPath = decodePaxBytes(tar.read(off + 512, header.size)).path;
      off = next;
      continue;
    }
    if (header.type === 'file') {
      const name = paxPath ?? header.name;
      const a = mine.files['/' + name];
      const b = theirs.files['/' + name];
      if (a && b && a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3]) out.set(name, { offset: start, length: next - start });
    }
    paxPath = undefined;
    off = start = next;
  }
  return out;
}

type ScannedHeader = { name: string; size: number; type: string };

const TYPE_BYTE = 156;
const USTAR_MAGIC = [0x75, 0x73, 0x74, 0x61, 0x72, 0]; // "ustar\0"

/**
 * Name, size and type of a header block as kiln's writer makes them (ustar, octal sizes), read
 * directly: tar-stream's full decode of every field was most of a 5,000-file scan. Anything
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
