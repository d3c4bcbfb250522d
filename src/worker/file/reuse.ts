// Incremental COPY. When a COPY has to run again because some of its source files changed, the
// previous snapshot of the same COPY (same op, same destination layers, same source folder,
// same mtime stamp: its "lineage") already holds every unchanged file exactly as a new copy
// would write it. The new snapshot hard-links those and copies only what changed.
//
// Why sharing an inode between snapshots is safe: a committed snapshot never changes, and RUN
// sees snapshots only as read-only overlay lower layers (a write copies up to a new inode).
// Why the layer tar stays byte-identical to a full copy's: only a file written as a copy (not
// as a hard link to an earlier file of the same copy) of a source without extended attributes
// is lendable, and each by its one path, so a lent inode gets exactly the names in the new
// snapshot that a copy would give it (the tar writer pairs hard links within one snapshot walk
// only); and its owner, mode and mtime are the ones a copy would set.

import type { Digest } from '../../graph/ops.js';
import type { Store } from '../../store/store.js';
import type { EntryMeta } from './diff-writer.js';
import { readCopyManifest, type CopyManifest, type CopyManifestRow } from '../../store/copy-manifest.js';

type Row = CopyManifestRow;

export class CopyReuse {
  private readonly lent: Record<string, Row> = Object.create(null) as Record<string, Row>;
  /** Files linked from the previous snapshot so far. */
  linked = 0;

  private constructor(
    private readonly previousId: string | undefined,
    private readonly previousFs: string | undefined,
    private readonly previous: Record<string, Row>,
  ) {}

  /** Nothing to reuse, but what this run writes is recorded for the next one. */
  static fresh(): CopyReuse {
    return new CopyReuse(undefined, undefined, Object.create(null) as Record<string, Row>);
  }

  /** The previous snapshot of `lineage`, when it is still in the store with its manifest. */
  static async open(store: Store, lineage: Digest): Promise<CopyReuse> {
    const id = await store.getLineage(lineage);
    if (!id) return CopyReuse.fresh();
    const parsed = readCopyManifest(store, id);
    if (!parsed) return CopyReuse.fresh(); // pruned, or made before manifests existed
    return new CopyReuse(id, store.snapshotFs(id), Object.assign(Object.create(null), parsed.files) as Record<string, Row>);
  }

  /** Host path of the previous snapshot's file at `target` when it is exactly what a copy would write. */
  candidate(target: string, digest: Digest, meta: EntryMeta): string | undefined {
    if (!this.previousFs) return undefined;
    const row = this.previous[target];
    if (!row || row[0] !== digest || row[1] !== meta.uid || row[2] !== meta.gid || row[3] !== (meta.mode & 0o7777)) return undefined;
    // One lend per file: two names for one inode would read as a hard link in the layer.
    delete this.previous[target];
    return this.previousFs + target; // target is canonical and absolute
  }

  /** `target` in the new snapshot may be lent on (a copy or a lent file of a source without xattrs). */
  record(target: string, digest: Digest, meta: EntryMeta): void {
    this.lent[target] = [digest, meta.uid, meta.gid, meta.mode & 0o7777];
  }

  /** A staged file was replaced or removed: it can no longer be lent. */
  forget(target: string): void {
    delete this.lent[target];
  }

  /** Forgets `dir` and everything lent below it. */
  forgetUnder(dir: string): void {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    for (const target of Object.keys(this.lent)) if (target === dir || target.startsWith(prefix)) delete this.lent[target];
  }

  manifest(): string {
    const body: CopyManifest = { v: 1, files: this.lent, ...(this.linked > 0 && this.previousId ? { from: this.previousId } : {}) };
    return JSON.stringify(body);
  }
}
