// Shared pieces of the file worker tests: a real store in a temp folder, snapshots made from
// plain folders, a WorkerContext, and an exact listing of a snapshot folder to compare against.

import { lstat, readdir, readFile, readlink, mkdir, writeFile, symlink, chmod, lchown, lutimes } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Store } from '../../../src/store/store.js';
import type { WorkerContext, ResolvedInput } from '../../../src/worker/types.js';
import type { CopyAction, FileOp, FileAction } from '../../../src/graph/ops.js';
import { runFile } from '../../../src/worker/file/index.js';
import { getXattr } from '../../../src/util/syscalls.js';
import { tempDir } from '../../helpers/tmp.js';

export async function openTestStore(): Promise<Store> {
  return Store.open(await tempDir('kiln-file-store-'));
}

export function testCtx(store: Store, sourceDateEpoch?: number): WorkerContext {
  return {
    store,
    secrets: new Map(),
    sshAgents: new Map(),
    limits: {},
    allowInsecure: false,
    sourceDateEpoch,
    signal: new AbortController().signal,
    onOutput: () => {},
  };
}

/** A tree description: `dir/` entries are folders, `->target` a symlink, else file content. */
export type TreeSpec = Record<string, string | { content?: string; mode?: number; uid?: number; gid?: number; link?: string; dir?: boolean; mtime?: number }>;

export async function writeTree(root: string, spec: TreeSpec): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const [p, v] of Object.entries(spec)) {
    const full = join(root, p);
    const o = typeof v === 'string' ? (p.endsWith('/') ? { dir: true } : v.startsWith('->') ? { link: v.slice(2) } : { content: v }) : v;
    await mkdir(dirname(full.replace(/\/$/, '')), { recursive: true });
    if (o.dir || p.endsWith('/')) await mkdir(full, { recursive: true });
    else if (o.link !== undefined) await symlink(o.link, full);
    else await writeFile(full, o.content ?? '');
    if (o.link === undefined && o.mode !== undefined) await chmod(full, o.mode);
    if (o.uid !== undefined || o.gid !== undefined) await lchown(full, o.uid ?? 0, o.gid ?? 0);
    if (o.mtime !== undefined) await lutimes(full, o.mtime, o.mtime);
  }
}

/** Commits a folder built from `spec` as a snapshot; returns its id. */
export async function makeSnapshot(store: Store, spec: TreeSpec | ((dir: string) => Promise<void>)): Promise<string> {
  const dir = await store.tempDir('test-snap');
  if (typeof spec === 'function') await spec(dir);
  else await writeTree(dir, spec);
  const id = 'test-' + randomBytes(8).toString('hex');
  await store.commitSnapshot(id, dir, { source: 'layer' });
  return id;
}

export interface Listed {
  type: string;
  /** Absent for symlinks (their mode means nothing). */
  mode?: string;
  owner: string;
  content?: string;
  link?: string;
  mtime: number;
  opaque?: true;
  ino?: number;
}

/** Every entry below `root`: exact type, permission bits (octal), owner, content, link target, mtime. */
export async function listTree(root: string, withIno = false): Promise<Record<string, Listed>> {
  const out: Record<string, Listed> = {};
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const full = join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(full);
      const kind = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isCharacterDevice() ? `char ${st.rdev}` : st.isFIFO() ? 'fifo' : 'other';
      const e: Listed = {
        type: kind,
        mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
        owner: `${st.uid}:${st.gid}`,
        mtime: Math.round(st.mtimeMs / 1000),
      };
      if (st.isFile()) e.content = (await readFile(full)).toString('utf8');
      if (st.isSymbolicLink()) {
        e.link = await readlink(full);
        delete (e as { mode?: string }).mode;
      }
      if (st.isDirectory() && getXattr(full, 'trusted.overlay.opaque')?.toString() === 'y') e.opaque = true;
      if (withIno && st.isFile()) e.ino = st.ino;
      out[r] = e;
      if (st.isDirectory()) await walk(full, r);
    }
  };
  await walk(root, '');
  return out;
}

export function copyAction(partial: Partial<CopyAction> & { src: string[]; dest: string }): CopyAction {
  return { action: 'copy', from: 1, link: false, parents: false, exclude: [], add: false, ...partial };
}

export function fileOp(...actions: FileAction[]): FileOp {
  return { kind: 'file', actions };
}

let seq = 0;
/** Runs the op and returns the listing of its snapshot (or null when nothing changed). */
export async function runAndList(
  store: Store,
  op: FileOp,
  inputs: ResolvedInput[],
  ctx = testCtx(store),
): Promise<Record<string, Listed> | null> {
  const id = `out-${process.pid}-${++seq}-${randomBytes(4).toString('hex')}`;
  const r = await runFile(op, inputs, ctx, id);
  if (r.snapshot === null) return null;
  return listTree(store.snapshotFs(r.snapshot));
}

/** Shorthands for expected listings. */
export const F = (content: string, mode = '0644', owner = '0:0', mtime = 0): Listed => ({ type: 'file', mode, owner, content, mtime });
export const D = (mode = '0755', owner = '0:0', mtime = 0): Listed => ({ type: 'dir', mode, owner, mtime });
export const L = (link: string, owner = '0:0', mtime = 0): Listed => ({ type: 'symlink', owner, link, mtime });
