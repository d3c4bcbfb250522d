import type { Command } from './command.js';
import { flagBool, flagList, flagString, parseArgs } from './args.js';
import { openStoreAlone } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { parseDuration, parseSize, pruneStore, type PruneOptions } from '../store/gc.js';
import { humanSize } from './image-info.js';

const cmd: Command = {
  summary: 'free space: remove unused build cache and unnamed blobs',
  usage: `kiln prune [flags]

Named images (kiln images) are kept. Without flags, removes snapshots no cache record can hand
out again, dangling cache records and blobs no name reaches. A prune runs alone: it waits for
the other kiln processes using the store to finish, and kiln commands started meanwhile wait
for it.

      --all                     also remove all build cache (every snapshot, cache record, cache mount,
                                file digest table and --explain record)
      --keep-storage SIZE       keep up to SIZE of build cache (e.g. 5GB), least recently used goes first
      --filter until=DURATION   only remove what was last used longer ago than DURATION (e.g. 24h)
      --root DIR                the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(
      argv,
      [
        { name: 'all', short: 'a', kind: 'boolean' },
        { name: 'keep-storage', kind: 'string' },
        { name: 'filter', kind: 'list' },
        { name: 'force', short: 'f', kind: 'boolean' },
        { name: 'root', kind: 'string' },
      ],
      'prune',
    );
    if (a.positional.length > 0) throw new KilnError('prune: takes no arguments', { exitCode: 2 });
    const opts: PruneOptions = { all: flagBool(a, 'all') };
    const keep = flagString(a, 'keep-storage');
    if (keep !== undefined) opts.keepStorage = parseSize(keep, '--keep-storage');
    for (const f of flagList(a, 'filter')) {
      const m = /^until=(.+)$/.exec(f);
      if (!m) throw new KilnError(`--filter: only until=DURATION is supported, not "${f}"`, { exitCode: 2 });
      opts.olderThanMs = parseDuration(m[1]!, '--filter until');
    }
    const { store, release } = await openStoreAlone(flagString(a, 'root'));
    const r = await pruneStore(store, opts).finally(release);
    process.stdout.write(`removed ${r.snapshots.length} snapshots, ${r.cacheRecords} cache records, ${r.blobs} blobs, ${r.mounts} cache mounts\n`);
    process.stdout.write(`reclaimed ${humanSize(r.reclaimedBytes)}\n`);
    return 0;
  },
};
export default cmd;
