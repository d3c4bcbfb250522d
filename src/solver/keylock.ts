// One step runs once across every kiln process sharing a store: the first to take a key's
// lock runs it, the others wait and then find it cached. mkdir is atomic, and the lock
// names its owner's pid so a lock left by a killed kiln is taken over.

import { mkdir, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { processAlive } from '../store/sweep.js';

export async function withKeyLock<T>(locksDir: string, name: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const dir = join(locksDir, name);
  await mkdir(locksDir, { recursive: true });
  for (;;) {
    signal.throwIfAborted();
    try {
      await mkdir(dir);
      await writeFile(join(dir, 'owner'), String(process.pid));
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
    await rm(dir, { recursive: true, force: true });
  }
}

async function isStale(dir: string): Promise<boolean> {
  try {
    const pid = Number(await readFile(join(dir, 'owner'), 'utf8'));
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid);
  } catch {
    // The owner file is written right after mkdir; a lock without one for long was abandoned in between.
    try {
      return Date.now() - (await stat(dir)).mtimeMs > 10_000;
    } catch {
      return false;
    }
  }
}
