// Which kiln processes are using a store. A prune deletes what no image name reaches, and a
// build's new blobs and snapshots are reached by nothing until its image is named, so a prune
// runs alone: it waits for every other kiln on the store to finish, and a kiln that starts
// during a prune waits for the prune. Each user is a file users/PID:STARTTIME, so a kiln
// killed with -9 stops counting as soon as its process is gone.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KilnError } from '../util/errors.js';
import { namesIn } from '../util/fs.js';
import { identityAlive, ownIdentity } from './sweep.js';
import type { Store } from './store.js';

const POLL_MS = 100;

function pidOf(identity: string): string {
  return identity.split(':')[0]!;
}

function livePruner(store: Store): string | undefined {
  let owner: string;
  try {
    owner = readFileSync(store.path('prune.lock', 'owner'), 'utf8').trim();
  } catch {
    return undefined;
  }
  return owner !== '' && owner !== ownIdentity() && identityAlive(owner) ? owner : undefined;
}

/**
 * Registers this process as a user of the store until it exits; waits while a prune runs.
 * `onWait` hears once that it is waiting, and for whom.
 */
export async function joinStore(store: Store, onWait: (message: string) => void, signal?: AbortSignal): Promise<void> {
  const dir = store.path('users');
  // Synchronously: every command joins its store at start, when nothing else could run meanwhile.
  mkdirSync(dir, { recursive: true });
  const mine = join(dir, ownIdentity());
  let told = false;
  for (;;) {
    // Registered first, checked second; the prune takes its lock first and checks second: of
    // two that start together at least one sees the other.
    writeFileSync(mine, '');
    const pruner = livePruner(store);
    if (!pruner) break;
    rmSync(mine, { force: true });
    if (!told) onWait(`waiting for kiln prune (pid ${pidOf(pruner)}) to finish with the store`);
    told = true;
    await sleep(POLL_MS, undefined, { signal });
  }
  process.once('exit', () => rmSync(mine, { force: true }));
}

/**
 * Makes this process the store's only user: takes the prune lock, then waits until every other
 * kiln on the store has finished. Returns the release. A second prune is refused, not queued.
 */
export async function useStoreAlone(store: Store, onWait: (message: string) => void, signal?: AbortSignal): Promise<() => Promise<void>> {
  const lock = store.path('prune.lock');
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, 'owner'), ownIdentity());
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const other = livePruner(store);
      if (other) throw new KilnError(`another kiln prune (pid ${pidOf(other)}) is running on this store`);
      // Left by a prune that was killed, or one that took the lock and is writing its owner:
      // a lock without an owner is only taken over once it is a few seconds old.
      if (await hasOwner(lock) || Date.now() - (await mtimeMs(lock)) > 5_000) await rm(lock, { recursive: true, force: true });
      else await sleep(POLL_MS, undefined, { signal });
    }
  }
  const release = () => rm(lock, { recursive: true, force: true });
  process.once('exit', () => rmSync(lock, { recursive: true, force: true }));
  try {
    let told = false;
    for (;;) {
      const others = await otherUsers(store);
      if (others.length === 0) return release;
      if (!told) onWait(`waiting for ${others.length} other kiln process${others.length === 1 ? '' : 'es'} using the store to finish (pid ${others.map(pidOf).join(', ')})`);
      told = true;
      await sleep(POLL_MS, undefined, { signal });
    }
  } catch (err) {
    await release();
    throw err;
  }
}

async function hasOwner(lock: string): Promise<boolean> {
  return (await readFile(join(lock, 'owner'), 'utf8').catch(() => '')).trim() !== '';
}

async function mtimeMs(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.mtimeMs ?? 0;
}

/** Live users other than this process; files of dead ones are removed on the way. */
async function otherUsers(store: Store): Promise<string[]> {
  const dir = store.path('users');
  const live: string[] = [];
  for (const n of await namesIn(dir)) {
    if (n === ownIdentity()) continue;
    if (identityAlive(n)) live.push(n);
    else await rm(join(dir, n), { force: true });
  }
  return live;
}
