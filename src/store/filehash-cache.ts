// Content digests of files, remembered so that an unchanged file is never read twice, in this
// build or the next. A file counts as unchanged while its size, mtime, ctime and inode are the
// same (ctime catches a rewrite that restored the mtime). Each folder read (a build context,
// or a snapshot layer that COPY --from reads) gets a persistent table in the store,
// filehash/<sha256 of the folder path>.json, behind an in-memory LRU. It is only a cache:
// deleting the folder costs one re-read of each file. (Not under cache/, whose entries are
// the solver's cache records.)
//
// A table file is its JSON object on the first line, then a line per row added since, each
// `[key, size, mtimeMs, ctimeMs, ino, digest]` (later lines win). A rebuild that hashed a few
// changed files appends their rows: rewriting a table of 5,000 rows cost ~15-25 ms of the event
// loop, on the path of the step. The whole table is written again once the appended rows are
// many.

import { readFileSync } from 'node:fs';
import { appendFile, readFile, mkdir, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { LRUCache } from 'lru-cache';
import type { Digest } from '../graph/ops.js';
import type { Store } from './store.js';
import { ResumableSha256 } from '../util/sha256-resumable.js';
import { hashSmallFile } from './file-hash-batch.js';
import { fileStream } from '../util/fs.js';

export interface HashableStat {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

type Row = [size: number, mtimeMs: number, ctimeMs: number, ino: number, digest: Digest];

interface TableFile {
  version: 1;
  files: Record<string, Row>;
}

type AppendedRow = [key: string, ...row: Row];

/** Appended rows are folded into a rewrite once they are this many, or a quarter of the table. */
const MIN_REWRITE = 256;

const openTables = new Map<string, Promise<FileHashTable>>();
/** The tables of openTables that have loaded, for synchronous lookups. */
const loadedTables = new Map<string, FileHashTable>();
// Made on first use, and lru-cache loaded then too: it allocates its slots up front, and its
// module loads diagnostics_channel and perf_hooks, which every kiln start would pay.
let memoryCache: Promise<LRUCache<string, Digest>> | undefined;
function memory(): Promise<LRUCache<string, Digest>> {
  return (memoryCache ??= import('lru-cache').then(({ LRUCache: Cache }) => new Cache<string, Digest>({ max: 50_000 })));
}

function memoryKey(host: string, st: HashableStat): string {
  return `${host}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}\0${st.ino}`;
}

/** The prefix of the tables of folders inside the tmp/ entry `name` (see sweep.ts). */
export const tempTablePrefix = (name: string): string => `tmp-${name}-`;

function tableFile(store: Store, folder: string): string {
  const hash = createHash('sha256').update(folder).digest('hex');
  // A folder of tmp/ (a fetched context) is named after its entry, so the sweep of a killed
  // build's entry finds its tables too.
  const tmp = store.path('tmp') + '/';
  const entry = folder.startsWith(tmp) ? folder.slice(tmp.length).split('/')[0] : undefined;
  return store.path('filehash', entry ? `${tempTablePrefix(entry)}${hash}.json` : `${hash}.json`);
}

/** Drops the table of a folder that is gone for good (a build's temporary context). */
export async function forgetFolderDigests(store: Store, folder: string): Promise<void> {
  const k = `${store.root}\0${folder}`;
  openTables.delete(k);
  loadedTables.delete(k);
  await rm(tableFile(store, folder), { force: true });
}

/** Files from this size on are read in chunks and hashed off the event loop. */
export const BIG_FILE = 1 << 20;

export async function hashFile(host: string, size = Infinity): Promise<Digest> {
  // Small files in native batches (or one read each): a stream costs several thread-pool round
  // trips per file.
  if (size < BIG_FILE) return hashSmallFile(host, size);
  const chunks = fileStream(host) as AsyncIterable<Buffer>;
  // Big ones hashed on a thread-pool thread: several at once, and the event loop stays free.
  const off = ResumableSha256.start();
  if (off) {
    for await (const chunk of chunks) {
      off.update(chunk);
      await off.queuedAtMost(4 << 20); // reading stays a few megabytes ahead at most
    }
    return off.digest();
  }
  const h = createHash('sha256');
  for await (const chunk of chunks) h.update(chunk);
  return `sha256:${h.digest('hex')}`;
}

/** A table of digests for one folder (a build context); `save()` persists what changed. */
export class FileHashTable {
  /** Rows hashed since the last save, to append. */
  private fresh: AppendedRow[] = [];

  private constructor(
    private readonly store: Store,
    private readonly file: string,
    private readonly rows: Record<string, Row>,
    /** Lines after the table object in the file. */
    private appended: number,
    /** The file is a table ending in a newline: rows may be appended to it. */
    private appendable: boolean,
  ) {}

  /** The persistent table for `folder` (one per store and folder in this process). */
  static open(store: Store, folder: string): Promise<FileHashTable> {
    const k = `${store.root}\0${folder}`;
    let t = openTables.get(k);
    if (!t) {
      const file = tableFile(store, folder);
      t = readFile(file, 'utf8').then(
        (text) => FileHashTable.parse(store, file, text),
        () => FileHashTable.parse(store, file, undefined),
      );
      void t.then((table) => loadedTables.set(k, table));
      openTables.set(k, t);
    }
    return t;
  }

  /**
   * open(), read synchronously when it has not loaded yet: for a snapshot layer's small table,
   * looked up file by file in a walk, where a promise per file cost more than the read.
   * Undefined while open() is reading it.
   */
  static openSync(store: Store, folder: string): FileHashTable | undefined {
    const k = `${store.root}\0${folder}`;
    let t = loadedTables.get(k);
    if (!t) {
      if (openTables.has(k)) return undefined;
      const file = tableFile(store, folder);
      let text: string | undefined;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        text = undefined;
      }
      t = FileHashTable.parse(store, file, text);
      loadedTables.set(k, t);
      openTables.set(k, Promise.resolve(t));
    }
    return t;
  }

  private static parse(store: Store, file: string, text: string | undefined): FileHashTable {
    if (text === undefined) return new FileHashTable(store, file, {}, 0, false);
    const lines = text.split('\n');
    let rows: Record<string, Row> | undefined;
    try {
      const parsed = JSON.parse(lines[0]!) as TableFile;
      if (parsed.version === 1 && parsed.files && typeof parsed.files === 'object') rows = parsed.files;
    } catch {
      // Damaged: start over; it is only a cache.
    }
    if (!rows) return new FileHashTable(store, file, {}, 0, false);
    let appended = 0;
    for (let i = 1; i < lines.length; i++) {
      if (lines[i] === '') continue;
      appended++;
      try {
        const [key, ...row] = JSON.parse(lines[i]!) as AppendedRow;
        if (typeof key === 'string' && row.length === 5) rows[key] = row;
      } catch {
        // A line cut short by a crash: that row is hashed again.
      }
    }
    // A file without its last newline (cut short, or written whole by an older kiln) is written
    // whole again rather than appended to.
    return new FileHashTable(store, file, rows, appended, text.endsWith('\n'));
  }

  /** The remembered digest when the file is unchanged since, without reading it. */
  known(key: string, st: HashableStat): Digest | undefined {
    const row = this.rows[key];
    if (row && row[0] === st.size && row[1] === st.mtimeMs && row[2] === st.ctimeMs && row[3] === st.ino) return row[4];
    return undefined;
  }

  /** Digest of the file at `host` (keyed in the table by `key`, usually its relative path). */
  async digest(key: string, host: string, st: HashableStat): Promise<Digest> {
    const known = this.known(key, st);
    if (known) return known;
    // (Not through the in-memory LRU: the row answers from now on, and making the LRU costs
    // more than reading the few files a rebuild finds changed.)
    const d = await hashFile(host, st.size);
    const row: Row = [st.size, st.mtimeMs, st.ctimeMs, st.ino, d];
    this.rows[key] = row;
    this.fresh.push([key, ...row]);
    return d;
  }

  async save(): Promise<void> {
    if (this.fresh.length === 0) return;
    const fresh = this.fresh;
    this.fresh = [];
    await mkdir(this.store.path('filehash'), { recursive: true });
    const appended = this.appended + fresh.length;
    // Only a cache: no fsync (a table lost to a power cut costs one re-read of each file).
    if (this.appendable && appended < Math.max(MIN_REWRITE, Object.keys(this.rows).length / 4)) {
      await appendFile(this.file, fresh.map((r) => `${JSON.stringify(r)}\n`).join(''));
      this.appended = appended;
      return;
    }
    const body: TableFile = { version: 1, files: this.rows };
    await this.store.writeFileAtomic(this.file, `${JSON.stringify(body)}\n`, { durable: false });
    this.appended = 0;
    this.appendable = true;
  }
}

/** Digest of an immutable file (inside a snapshot): memory cache only. */
export async function digestImmutable(host: string, st: HashableStat): Promise<Digest> {
  const mk = memoryKey(host, st);
  const cache = await memory();
  let d = cache.get(mk);
  if (!d) {
    d = await hashFile(host, st.size);
    cache.set(mk, d);
  }
  return d;
}
