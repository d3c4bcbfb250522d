// One step runs once across every kiln process sharing a store: the first to take a key's
// lock runs it, the others wait and then find it cached. mkdir is atomic, and the lock names
// its owner (pid and start time, so a reused pid is not taken for the owner): a lock left by
// a killed kiln is taken over. Two waiters taking over at once may both run the step; that
// costs time, not correctness (identical snapshot ids, the second commit is discarded).

import { mkdirSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { identityAlive, ownIdentity } from '../store/sweep.js';
import { namesIn } from '../util/fs.js';

// Taking and releasing a lock are a few calls on tiny files, made synchronously: every step
// that runs takes one, and thread-pool round trips cost more than the calls themselves.
export async function withKeyLock<T>(locksDir: string, name: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const dir = join(locksDir, name);
  for (;;) {
    signal.throwIfAborted();
    try {
      mkdirLock(locksDir, dir);
      writeFileSync(join(dir, 'owner'), ownIdentity());
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (await isStale(dir)) await rm(dir, { recursive: true, force: true });
      else await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    releaseLock(dir);
  }
}

function mkdirLock(locksDir: string, dir: string): void {
  try {
    mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(locksDir, { recursive: true });
    mkdirSync(dir);
  }
}

function releaseLock(dir: string): void {
  try {
    unlinkSync(join(dir, 'owner'));
    rmdirSync(dir);
  } catch {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes the locks of kiln processes that are gone (a kill -9 leaves them); returns their names. */
export async function sweepStaleLocks(locksDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const n of await namesIn(locksDir)) {
    const dir = join(locksDir, n);
    if (await isStale(dir)) {
      await rm(dir, { recursive: true, force: true });
      removed.push(n);
    }
  }
  return removed;
}

async function isStale(dir: string): Promise<boolean> {
  let owner = '';
  try {
    owner = (await readFile(join(dir, 'owner'), 'utf8')).trim();
  } catch {
    // No owner file yet: see below.
  }
  const pid = Number(owner.split(':')[0]);
  if (owner !== '' && Number.isInteger(pid) && pid > 0) {
    // Gone, or its pid reused after a kill -9 (another start time).
    return pid !== process.pid && !identityAlive(owner);
  }
  // The owner file is written right after mkdir; a kill in between leaves none (or an empty
  // one). Such a lock, untouched for a while, was abandoned.
  try {
    return Date.now() - (await stat(dir)).mtimeMs > 5_000;
  } catch {
    return false;
  }
}
