// RUN --mount: turns each RunMount into sandbox spec records, and holds the cache locks the
// step needs until it ends.

import { closeSync, openSync, renameSync } from 'node:fs';
import { chmod, chown, mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { createHash } from 'node:crypto';
import type { ExecOp, RunMount } from '../../graph/ops.js';
import type { ResolvedInput, WorkerContext } from '../types.js';
import { removeTree, type Store } from '../../store/store.js';
import { KilnError } from '../../util/errors.js';
import { flock, LOCK_EX, LOCK_NB, LOCK_UN } from '../../util/syscalls.js';
import type { SpecToken } from '../sandbox/spec.js';
import { overlayMountSpec } from './overlay.js';
import { writeContextWhiteouts } from './context-view.js';
import { seedCacheDir } from './cache-seed.js';
import { renameIntoPlace } from '../../util/fs.js';
import { serveAgent, type AgentServer } from '../ssh/agent.js';

export interface PreparedMounts {
  records: SpecToken[][];
  env: string[];
  release(): void;
}

interface StepDirs {
  /** Private scratch folder of this step (removed after it). */
  dir: string;
}

/** A path inside the mount's source, never above its root. */
function subPath(source: string): string {
  const p = posix.normalize('/' + (source || '/'));
  return p;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits for an exclusive flock without blocking the event loop. */
async function lockExclusive(path: string, signal: AbortSignal, wait: boolean): Promise<number | undefined> {
  const fd = openSync(path, 'a');
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB)) return fd;
    if (!wait) {
      closeSync(fd);
      return undefined;
    }
    if (signal.aborted) {
      closeSync(fd);
      throw new KilnError('aborted while waiting for a locked cache mount');
    }
    await sleep(50);
  }
}

export function cacheMountDir(ctx: WorkerContext, id: string): string {
  return cacheMountPath(ctx.store, id);
}

/** Where a RUN --mount=type=cache folder lives in the store (also read by --cache-to cache-mounts=true). */
export function cacheMountPath(store: Store, id: string): string {
  return store.path('mounts', `cache-${createHash('sha256').update(id).digest('hex').slice(0, 32)}`);
}

export async function prepareMounts(
  op: ExecOp,
  inputs: ResolvedInput[],
  ctx: WorkerContext,
  dirs: StepDirs,
): Promise<PreparedMounts> {
  const records: SpecToken[][] = [];
  const env: string[] = [];
  const locks: number[] = [];
  const agents: AgentServer[] = [];
  /** --no-cache: cache folders made new for this step, to replace the old ones when it ends. */
  const replacements: Array<{ fresh: string; dir: string }> = [];
  const release = () => {
    // Before the locks go: a step waiting on a locked cache must find the new folder.
    for (const r of replacements.splice(0)) replaceCacheDir(ctx.store, r.fresh, r.dir);
    for (const a of agents.splice(0)) a.close();
    for (const fd of locks.splice(0)) {
      try {
        flock(fd, LOCK_UN);
      } finally {
        closeSync(fd);
      }
    }
  };
  let scratch = 0;
  const scratchDir = async (what: string) => {
    const d = join(dirs.dir, `${what}${scratch++}`);
    await mkdir(d);
    return d;
  };
  // A layer that changes nothing, for overlays that need a second lower.
  let empty: string | undefined;
  const emptyDir = async () => (empty ??= await scratchDir('empty'));
  try {
    // Parents before children, so a mount inside another mount's target lands on top of it.
    const sorted = [...op.mounts].sort((a, b) => depth(a) - depth(b));
    for (const mnt of sorted) {
      switch (mnt.type) {
        case 'bind': {
          const input = inputs[mnt.from];
          if (!input) throw new KilnError(`RUN --mount from input ${mnt.from} is missing`);
          const source = subPath(mnt.source);
          if (input.kind === 'context') {
            const hidden = await scratchDir('ignored');
            const filtered = await writeContextWhiteouts(input.dir, input.excludePatterns, hidden);
            if (!mnt.readwrite && !filtered) records.push(['bind-at', input.dir, source, mnt.target, 'ro']);
            else {
              // Ignored files are whited out; writes to a rw bind are discarded (a throwaway upper).
              const lowers = filtered ? [hidden, input.dir] : [input.dir, await emptyDir()];
              const staging = await scratchDir('bind-at');
              const upper = mnt.readwrite ? await scratchDir('bind-upper') : undefined;
              const work = mnt.readwrite ? await scratchDir('bind-work') : undefined;
              const o = await overlayMountSpec(lowers, upper, work, `${staging}-links`);
              records.push(['overlay-at', staging, o.cwd, o.data, source, mnt.target, mnt.readwrite ? 'rw' : 'ro']);
            }
          } else {
            const lowers = input.layers.map((id) => ctx.store.snapshotFs(id)).reverse();
            if (lowers.length === 0) lowers.push(await emptyDir());
            const staging = await scratchDir('bind-at');
            if (mnt.readwrite) {
              const upper = await scratchDir('bind-upper');
              const work = await scratchDir('bind-work');
              const o = await overlayMountSpec(lowers, upper, work, `${staging}-links`);
              records.push(['overlay-at', staging, o.cwd, o.data, source, mnt.target, 'rw']);
            } else {
              // A read-only overlay needs two lowers at least; an empty one changes nothing.
              if (lowers.length === 1) lowers.push(await emptyDir());
              const o = await overlayMountSpec(lowers, undefined, undefined, `${staging}-links`);
              records.push(['overlay-at', staging, o.cwd, o.data, source, mnt.target, 'ro']);
            }
          }
          break;
        }
        case 'cache': {
          // --no-cache ignores cache mounts too (BuildKit since 2019): the step starts from a new
          // folder, which then becomes the cache.
          const ignoreOld = ctx.reuseEarlierFiles === false;
          const dir = cacheMountDir(ctx, mnt.id);
          let use = ignoreOld ? await newCacheDir(ctx, mnt, inputs) : await openCacheDir(ctx, mnt, inputs);
          if (ignoreOld) replacements.push({ fresh: use, dir });
          if (mnt.sharing === 'locked') {
            locks.push((await lockExclusive(`${dir}.lock`, ctx.signal, true))!);
          } else if (mnt.sharing === 'private' && !ignoreOld) {
            // (A new folder is this step's alone already.)
            const fd = await lockExclusive(`${dir}.lock`, ctx.signal, false);
            if (fd !== undefined) locks.push(fd);
            else {
              // In use by another step: this one gets a fresh folder of its own.
              use = await scratchDir('cache');
              await chown(use, mnt.uid, mnt.gid);
              await chmod(use, mnt.mode);
            }
          }
          records.push(['bind', use, mnt.target, mnt.readonly ? 'ro' : 'rw']);
          break;
        }
        case 'tmpfs': {
          const opts = ['mode=1777'];
          if (mnt.size !== undefined) opts.push(`size=${mnt.size}`);
          records.push(['tmpfs', mnt.target, opts.join(',')]);
          break;
        }
        case 'secret': {
          const value = ctx.secrets.get(mnt.id);
          if (value === undefined) {
            if (mnt.required) throw new KilnError(`secret ${mnt.id} is required but was not given (--secret id=${mnt.id},src=FILE)`);
            break;
          }
          if (mnt.env) env.push(`${mnt.env}=${value.toString('utf8')}`);
          if (mnt.target) records.push(['file', mnt.target, mnt.mode.toString(8), String(mnt.uid), String(mnt.gid), 'ro', value]);
          break;
        }
        case 'ssh': {
          const source = ctx.sshAgents.get(mnt.id);
          if (source === undefined) {
            if (mnt.required) throw new KilnError(`ssh agent ${mnt.id} is required but was not given (--ssh ${mnt.id})`);
            // As in BuildKit, the step is told where the agent would be, though none is there.
            if (!env.some((e) => e.startsWith('SSH_AUTH_SOCK='))) env.push(`SSH_AUTH_SOCK=${mnt.target}`);
            break;
          }
          if (source.kind === 'socket') {
            await stat(source.path).catch((err: unknown) => {
              throw new KilnError(`ssh agent socket ${source.path} for --ssh ${mnt.id}: ${(err as Error).message}`);
            });
          }
          const agent = await serveAgent(source, join(await scratchDir('ssh'), 'agent.sock'), mnt);
          agents.push(agent);
          records.push(['bind', agent.path, mnt.target, 'rw']);
          if (!env.some((e) => e.startsWith('SSH_AUTH_SOCK='))) env.push(`SSH_AUTH_SOCK=${mnt.target}`);
          break;
        }
      }
    }
    for (const f of op.files) {
      records.push(['file', f.path, f.mode.toString(8), '0', '0', 'ro', Buffer.from(f.content)]);
    }
  } catch (err) {
    // The step never ran: its new cache folders go, and the old ones stay the cache.
    for (const r of replacements.splice(0)) void removeTree(dirname(r.fresh)).catch(() => {});
    release();
    throw err;
  }
  return { records, env, release };
}

function depth(m: RunMount): number {
  const t = m.type === 'secret' ? (m.target ?? '') : m.target;
  return t.split('/').filter(Boolean).length;
}

type CacheMount = Extract<RunMount, { type: 'cache' }>;

async function openCacheDir(ctx: WorkerContext, mnt: CacheMount, inputs: ResolvedInput[]): Promise<string> {
  const dir = cacheMountDir(ctx, mnt.id);
  try {
    await stat(dir);
    return dir;
  } catch {
    // new: made in tmp/ and renamed in, so a concurrent step never sees it half seeded
  }
  const fresh = await newCacheDir(ctx, mnt, inputs);
  try {
    await renameIntoPlace(fresh, dir); // false: another step made it first
  } finally {
    await rm(dirname(fresh), { recursive: true, force: true });
  }
  return dir;
}

/** A cache folder as a new one starts (seeded from `from`, or empty with the mount's owner and mode), in a folder of tmp/. */
async function newCacheDir(ctx: WorkerContext, mnt: CacheMount, inputs: ResolvedInput[]): Promise<string> {
  const fresh = join(await ctx.store.tempDir('cache-seed'), 'dir');
  await mkdir(fresh);
  try {
    const from = mnt.from !== undefined ? inputs[mnt.from] : undefined;
    if (mnt.from !== undefined && !from) throw new KilnError(`cache mount from input ${mnt.from} is missing`);
    if (from) await seedCacheDir(fresh, from, mnt.source, ctx);
    else {
      await chown(fresh, mnt.uid, mnt.gid);
      await chmod(fresh, mnt.mode);
    }
    return fresh;
  } catch (err) {
    await rm(dirname(fresh), { recursive: true, force: true });
    throw err;
  }
}

/**
 * After a step run under --no-cache: its new cache folder takes the old one's place, as in
 * BuildKit, where the next build finds what that step left. The old folder goes to tmp/ and is
 * removed in the background (or swept by a later kiln). Synchronous: it runs in release().
 */
function replaceCacheDir(store: Store, fresh: string, dir: string): void {
  const aside = store.tempDirSync('cache-old');
  try {
    renameSync(dir, join(aside, 'dir'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    renameSync(fresh, dir);
  } catch (err) {
    // Another step made a new one in the meantime: it stays, this one goes.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
  void removeTree(aside).catch(() => {});
  void removeTree(dirname(fresh)).catch(() => {});
}
