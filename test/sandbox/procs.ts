// Host process table helpers for the cleanup tests.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface HostProc {
  pid: number;
  ppid: number;
  cmdline: string[];
  exe: string;
}

export function hostProcesses(): HostProc[] {
  const out: HostProc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean);
      let exe = '';
      try {
        exe = readlinkSync(`/proc/${name}/exe`);
      } catch {
        // kernel threads and zombies have none
      }
      out.push({ pid: Number(name), ppid, cmdline, exe });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Processes running our sandbox helper that this process started. */
export function ourHelpers(): HostProc[] {
  return hostProcesses().filter((p) => p.ppid === process.pid && p.exe.endsWith('/kiln-sandbox'));
}

export function withArg(arg: string): HostProc[] {
  return hostProcesses().filter((p) => p.cmdline.includes(arg));
}

/** Polls `check` until it returns true (the kernel tears a pid namespace down asynchronously). */
export async function eventually(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`still true after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function mountsMentioning(path: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(path));
}
