// tmp/ entries are named `<pid>-<random>-<what>`. An entry whose process is gone was left by
// a kiln that crashed or was killed; the next kiln to open the store removes it.

import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { unmountAllUnder } from './mounts.js';
import { tempTablePrefix } from './filehash-cache.js';

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `PID:STARTTIME` (clock ticks after boot, from /proc): unique for the machine's uptime. */
export function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces); starttime is field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return `${pid}:${fields[19]}`;
  } catch {
    return undefined;
  }
}

let own: string | undefined;
/** This process's identity (it never changes: /proc is read once). */
export function ownIdentity(): string {
  return (own ??= processIdentity(process.pid) ?? String(process.pid));
}

/** Whether the process a `PID:STARTTIME` identity names still runs (a reused pid does not count). */
export function identityAlive(identity: string): boolean {
  const pid = Number(identity.split(':')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return false;
  return !identity.includes(':') || processIdentity(pid) === identity;
}

/** The digest tables of the removed tmp/ entries' folders (filehash-cache.ts names them by entry). */
async function forgetTempTables(filehashDir: string, removed: string[]): Promise<void> {
  let tables: string[];
  try {
    tables = readdirSync(filehashDir);
  } catch {
    return;
  }
  const prefixes = removed.map(tempTablePrefix);
  for (const t of tables) if (prefixes.some((p) => t.startsWith(p))) await rm(join(filehashDir, t), { force: true });
}

export async function sweepStaleTemp(tmpDir: string): Promise<string[]> {
  const removed: string[] = [];
  // Listed synchronously: at the start of every command, and most often empty.
  let names: string[];
  try {
    names = readdirSync(tmpDir);
  } catch {
    names = [];
  }
  for (const name of names) {
    const pid = Number(name.split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && processAlive(pid))) continue;
    if (pid === process.pid) continue;
    const p = join(tmpDir, name);
    if (unmountAllUnder(p).length > 0) continue; // never delete through a mount
    await rm(p, { recursive: true, force: true });
    removed.push(name);
  }
  if (removed.length > 0) await forgetTempTables(join(tmpDir, '..', 'filehash'), removed);
  return removed;
}
