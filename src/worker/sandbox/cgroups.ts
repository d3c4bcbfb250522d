// Per-step cgroups for --memory, --memory-swap, --pids-limit, --cpus, --cpu-shares,
// --cpu-period, --cpu-quota, --cpuset-* and --cgroup-parent. Both layouts are handled: cgroup v1
// (one hierarchy per controller, as on hybrid hosts) and a unified cgroup v2. A step's cgroup
// is a child of kiln's own cgroup in each hierarchy, named kiln-<pid>-<random>, so a later kiln
// can tell whose it is and sweep it when that process is gone. Below a --cgroup-parent it is
// named the same, and the parent is listed in /run/kiln (which, like cgroups, lasts one boot)
// for the sweep to look there too, whatever the later build's flags.

import { readFileSync, existsSync, mkdirSync, writeFileSync, rmdirSync, readdirSync, appendFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ResourceLimits } from '../types.js';
import { KilnError, errorMessage } from '../../util/errors.js';
import { processAlive } from '../../store/sweep.js';

type Controller = 'memory' | 'pids' | 'cpu' | 'cpuset';

interface Hierarchy {
  version: 1 | 2;
  /** kiln's own cgroup folder in this hierarchy (v2: may move to `<mount>/kiln`, see below). */
  base: string;
  mountPoint: string;
  controllers: Controller[];
}

function unescapeMount(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Where each controller of ours lives, from /proc/self/mountinfo and /proc/self/cgroup. */
export function discoverHierarchies(): Hierarchy[] {
  const own = new Map<string, string>(); // "memory" or "" (v2) -> path in that hierarchy
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const c of m[1]!.split(',')) own.set(c, m[2]!);
  }
  const out: Hierarchy[] = [];
  const wanted: Controller[] = ['memory', 'pids', 'cpu', 'cpuset'];
  const covered = new Set<Controller>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0) continue;
    const fstype = f[dash + 1];
    const root = unescapeMount(f[3]!);
    const mountPoint = unescapeMount(f[4]!);
    const relative = (p: string) => (root === '/' ? p : p.startsWith(root) ? p.slice(root.length) || '/' : undefined);
    if (fstype === 'cgroup') {
      const opts = (f[dash + 3] ?? '').split(',');
      const ctrls = wanted.filter((c) => opts.includes(c) && !covered.has(c));
      if (ctrls.length === 0) continue;
      const rel = relative(own.get(ctrls[0]!) ?? '/');
      if (rel === undefined) continue;
      ctrls.forEach((c) => covered.add(c));
      out.push({ version: 1, base: join(mountPoint, rel), mountPoint, controllers: ctrls });
    } else if (fstype === 'cgroup2') {
      const rel = relative(own.get('') ?? '/');
      if (rel === undefined) continue;
      const base = join(mountPoint, rel);
      let available: string[] = [];
      try {
        available = readFileSync(join(base, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
      } catch {
        continue;
      }
      const ctrls = wanted.filter((c) => available.includes(c) && !covered.has(c));
      if (ctrls.length === 0) continue;
      ctrls.forEach((c) => covered.add(c));
      out.push({ version: 2, base, mountPoint, controllers: ctrls });
    }
  }
  return out;
}

let hierarchiesCache: Hierarchy[] | undefined;
function hierarchies(): Hierarchy[] {
  return (hierarchiesCache ??= discoverHierarchies());
}

export interface StepCgroup {
  /** Folders the step's PID 1 joins (one per hierarchy used). */
  dirs: string[];
  limits: ResourceLimits;
  /** How many times the limits bit so far. */
  events(): { oomKills: number; pidsRefused: number };
  remove(): Promise<void>;
}

function neededControllers(l: ResourceLimits): Controller[] {
  const c: Controller[] = [];
  if (l.memoryBytes !== undefined) c.push('memory');
  if (l.pids !== undefined) c.push('pids');
  if (l.cpus !== undefined || l.cpuShares !== undefined || l.cpuPeriod !== undefined || l.cpuQuota !== undefined) c.push('cpu');
  if (l.cpusetCpus !== undefined || l.cpusetMems !== undefined) c.push('cpuset');
  return c;
}

function write(dir: string, file: string, value: string): void {
  try {
    writeFileSync(join(dir, file), value);
  } catch (err) {
    throw new KilnError(`cannot set ${file} in ${dir}: ${errorMessage(err)}`, { cause: err });
  }
}

function counter(file: string, key: string): number {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Makes the step's cgroups with its limits; null when no limit was asked for and no
 * --cgroup-parent given. Below a --cgroup-parent the step has a cgroup in every hierarchy, as a
 * container has; without one, only in those its limits need.
 */
export function createStepCgroup(limits: ResourceLimits): StepCgroup | null {
  const need = neededControllers(limits);
  const parent = limits.cgroupParent;
  if (need.length === 0 && parent === undefined) return null;
  const name = `kiln-${process.pid}-${randomBytes(4).toString('hex')}`;
  if (parent !== undefined) rememberCgroupParent(parent);
  const used: { h: Hierarchy; dir: string }[] = [];
  const dirs: string[] = [];
  const result: StepCgroup = {
    dirs,
    limits,
    events() {
      let oomKills = 0;
      let pidsRefused = 0;
      for (const { h, dir } of used) {
        if (h.controllers.includes('memory') && limits.memoryBytes !== undefined) {
          oomKills += counter(join(dir, h.version === 1 ? 'memory.oom_control' : 'memory.events'), 'oom_kill');
        }
        if (h.controllers.includes('pids') && limits.pids !== undefined) pidsRefused += counter(join(dir, 'pids.events'), 'max');
      }
      return { oomKills, pidsRefused };
    },
    remove: () => removeCgroupDirs(dirs),
  };
  try {
    const missing = need.find((c) => !hierarchies().some((x) => x.controllers.includes(c)));
    if (missing) throw new KilnError(`this machine has no ${missing} cgroup controller for the requested limit`);
    const targets = parent !== undefined ? hierarchies() : hierarchies().filter((h) => need.some((c) => h.controllers.includes(c)));
    for (const h of targets) {
      const ctrls = need.filter((c) => h.controllers.includes(c));
      let base = h.base;
      if (parent !== undefined) base = makeParent(h, parent, ctrls);
      else if (h.version === 2) {
        enableV2Controllers(h, need);
        base = h.base;
      }
      const dir = join(base, name);
      mkdirSync(dir);
      used.push({ h, dir });
      dirs.push(dir);
      for (const c of ctrls) applyLimit(h.version, dir, c, limits);
      // A v1 cpuset takes no task until its lists are set, limits or not.
      if (h.version === 1 && h.controllers.includes('cpuset') && !ctrls.includes('cpuset')) applyLimit(1, dir, 'cpuset', limits);
    }
  } catch (err) {
    void result.remove();
    throw err;
  }
  return result;
}

/**
 * The --cgroup-parent folder in one hierarchy, made if needed, as runc places a container: the
 * path is from the hierarchy's root. v2 hands the step's controllers down every level to it; a
 * new v1 cpuset level starts with its parent's CPUs and memory nodes.
 */
function makeParent(h: Hierarchy, parent: string, ctrls: Controller[]): string {
  const parts = parent.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new KilnError(`--cgroup-parent ${parent}: must not leave the cgroup hierarchy`);
  let dir = h.mountPoint;
  try {
    for (const p of parts) {
      if (h.version === 2 && ctrls.length > 0) enableIn(dir, ctrls);
      const next = join(dir, p);
      if (!existsSync(next)) {
        mkdirSync(next);
        if (h.version === 1 && h.controllers.includes('cpuset')) {
          for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(next, f), readFileSync(join(dir, f), 'utf8').trim());
        }
      }
      dir = next;
    }
    if (h.version === 2 && ctrls.length > 0) enableIn(dir, ctrls);
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError(`--cgroup-parent ${parent}: cannot use ${dir}: ${errorMessage(err)}`, { cause: err });
  }
  return dir;
}

function enableIn(dir: string, ctrls: Controller[]): void {
  const enabled = readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/);
  const missing = ctrls.filter((c) => !enabled.includes(c));
  if (missing.length > 0) writeFileSync(join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
}

/**
 * cgroup v2 lets a cgroup hand controllers to its children only while it holds no process
 * itself, and kiln's own cgroup holds kiln. Then the step cgroups go below `<mount>/kiln`
 * instead (the root may delegate; `kiln` holds no process), where the sweep looks too.
 */
function enableV2Controllers(h: Hierarchy, need: Controller[]): void {
  const ctrls = need.filter((c) => h.controllers.includes(c));
  try {
    enableIn(h.base, ctrls);
    return;
  } catch {
    // kiln's own cgroup is not a place for children with controllers
  }
  const shared = join(h.mountPoint, 'kiln');
  try {
    enableIn(h.mountPoint, ctrls);
    mkdirSync(shared, { recursive: true });
    enableIn(shared, ctrls);
    h.base = shared;
  } catch (err) {
    throw new KilnError(`cannot delegate the ${ctrls.join(', ')} cgroup controllers for the step limits: ${errorMessage(err)}`);
  }
}

function applyLimit(version: 1 | 2, dir: string, c: Controller, l: ResourceLimits): void {
  if (c === 'memory') {
    const bytes = l.memoryBytes!;
    // Without --memory-swap, none: swap would let the step go past the limit without an OOM kill.
    const swap = l.memorySwap ?? bytes;
    if (version === 1) {
      write(dir, 'memory.limit_in_bytes', String(bytes));
      if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) write(dir, 'memory.memsw.limit_in_bytes', swap === 'unlimited' ? '-1' : String(swap));
    } else {
      write(dir, 'memory.max', String(bytes));
      if (existsSync(join(dir, 'memory.swap.max'))) write(dir, 'memory.swap.max', swap === 'unlimited' ? 'max' : String(swap - bytes));
    }
  } else if (c === 'pids') {
    write(dir, 'pids.max', String(l.pids!));
  } else if (c === 'cpu') {
    if (l.cpuShares !== undefined) {
      // cgroup v2's weight from Docker's shares, as runc converts them.
      if (version === 1) write(dir, 'cpu.shares', String(l.cpuShares));
      else write(dir, 'cpu.weight', String(Math.min(10000, Math.max(1, Math.floor(1 + ((l.cpuShares - 2) * 9999) / 262142)))));
    }
    if (l.cpus === undefined && l.cpuPeriod === undefined && l.cpuQuota === undefined) return;
    const period = l.cpuPeriod ?? 100_000;
    const quota = l.cpus !== undefined ? Math.max(1000, Math.round(l.cpus * period)) : l.cpuQuota;
    if (version === 1) {
      write(dir, 'cpu.cfs_period_us', String(period));
      write(dir, 'cpu.cfs_quota_us', String(quota ?? -1));
    } else {
      write(dir, 'cpu.max', `${quota ?? 'max'} ${period}`);
    }
  } else {
    // A v1 cpuset takes no task until both lists are set: what is not asked for is the parent's.
    const parent = join(dir, '..');
    const cpus = l.cpusetCpus ?? (version === 1 ? readFileSync(join(parent, 'cpuset.cpus'), 'utf8').trim() : undefined);
    const mems = l.cpusetMems ?? (version === 1 ? readFileSync(join(parent, 'cpuset.mems'), 'utf8').trim() : undefined);
    if (cpus !== undefined) write(dir, 'cpuset.cpus', cpus);
    if (mems !== undefined) write(dir, 'cpuset.mems', mems);
  }
}

function procsIn(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Kills whatever is left in the folders and removes them; a dying task can hold one a moment. */
async function removeCgroupDirs(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    for (let attempt = 0; ; attempt++) {
      try {
        rmdirSync(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || attempt >= 100) throw err;
        for (const pid of procsIn(dir)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
}

/** Where the --cgroup-parent paths used since boot are listed, one per line. */
export const CGROUP_PARENTS_FILE = '/run/kiln/cgroup-parents';

const remembered = new Set<string>();

/** Lists `parent` for later sweeps, before any step cgroup is made below it. */
export function rememberCgroupParent(parent: string): void {
  if (remembered.has(parent)) return;
  if (!cgroupParents().includes(parent)) {
    try {
      mkdirSync(dirname(CGROUP_PARENTS_FILE), { recursive: true });
      // One short append is atomic: concurrent kilns at worst list a parent twice.
      appendFileSync(CGROUP_PARENTS_FILE, `${parent}\n`);
    } catch {
      // Without /run, a killed build's cgroups there wait for a build with the same parent.
    }
  }
  remembered.add(parent);
}

function cgroupParents(): string[] {
  try {
    return [...new Set(readFileSync(CGROUP_PARENTS_FILE, 'utf8').split('\n').filter((l) => l !== '' && !l.split('/').includes('..')))];
  } catch {
    return [];
  }
}

/**
 * Drops from the list the parents that no hierarchy has any more, so that every build's sweep
 * does not keep looking for them. A parent another kiln has just listed and not yet made could
 * be dropped too: its cgroups would then wait for a build with that parent to be swept.
 */
function forgetRemovedParents(listed: string[], hs: Hierarchy[]): void {
  const kept = listed.filter((p) => remembered.has(p) || hs.some((h) => existsSync(join(h.mountPoint, p))));
  if (kept.length === listed.length) return;
  const tmp = `${CGROUP_PARENTS_FILE}.${process.pid}`;
  try {
    writeFileSync(tmp, kept.map((p) => `${p}\n`).join(''));
    renameSync(tmp, CGROUP_PARENTS_FILE);
  } catch {
    rmSync(tmp, { force: true }); // the list stays as it was: only slower
  }
}

/** Removes step cgroups left by kiln processes that no longer run. */
export async function sweepStaleCgroups(): Promise<string[]> {
  const removed: string[] = [];
  let hs: Hierarchy[];
  try {
    hs = hierarchies();
  } catch {
    return removed;
  }
  const bases = new Set<string>();
  const listed = cgroupParents();
  const parents = [...new Set([...remembered, ...listed])];
  for (const h of hs) {
    bases.add(h.base);
    if (h.version === 2) bases.add(join(h.mountPoint, 'kiln'));
    for (const p of parents) bases.add(join(h.mountPoint, p));
  }
  forgetRemovedParents(listed, hs);
  for (const base of bases) {
    let names: string[];
    try {
      names = readdirSync(base);
    } catch {
      continue;
    }
    for (const n of names) {
      const m = /^kiln-(\d+)-[0-9a-f]+$/.exec(n);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || processAlive(pid)) continue;
      try {
        await removeCgroupDirs([join(base, n)]);
        removed.push(join(base, n));
      } catch {
        // still busy: the next sweep tries again
      }
    }
  }
  return removed;
}
