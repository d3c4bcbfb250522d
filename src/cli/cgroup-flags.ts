// The classic builder's resource flags that docker buildx still accepts: --cpu-shares,
// --cpu-period, --cpu-quota, --cpuset-cpus, --cpuset-mems and --memory-swap. buildx ignores them;
// kiln applies them to each RUN step's cgroup, as it applies --memory, with Docker's rules for
// values that cannot go together. And --cgroup-parent, which BuildKit honours: where the steps'
// cgroups go.

import { KilnError } from '../util/errors.js';
import type { ResourceLimits } from '../worker/types.js';
import { ramInBytes } from '../util/size.js';

export type CgroupOptions = Pick<ResourceLimits, 'cpuShares' | 'cpuPeriod' | 'cpuQuota' | 'memorySwap' | 'cpusetCpus' | 'cpusetMems' | 'cgroupParent'>;

const bad = (message: string) => new KilnError(message, { exitCode: 2 });

function whole(v: string | undefined, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw bad(`${flag}: expected a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, got "${v}"`);
  return Number(v);
}

function cpuList(v: string | undefined, flag: string): string | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v)) throw bad(`${flag}: expected a list such as 0-3 or 0,2, got "${v}"`);
  return v;
}

export interface CgroupFlagValues {
  cpuShares?: string;
  cpuPeriod?: string;
  cpuQuota?: string;
  memorySwap?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  cgroupParent?: string;
}

/** The flags' limits; `memoryBytes` and `cpus` are --memory's and --cpus' (for the checks between them). */
export function parseCgroupFlags(f: CgroupFlagValues, memoryBytes: number | undefined, cpus: number | undefined): CgroupOptions {
  const out: CgroupOptions = {};
  const shares = whole(f.cpuShares, '--cpu-shares', 2, 262144);
  if (shares !== undefined) out.cpuShares = shares;
  // Docker's bounds: a CFS period of 1 ms to 1 s, a quota of at least 1 ms.
  const period = whole(f.cpuPeriod, '--cpu-period', 1000, 1_000_000);
  const quota = whole(f.cpuQuota, '--cpu-quota', 1000);
  if ((period !== undefined || quota !== undefined) && cpus !== undefined) throw bad('--cpus cannot be given with --cpu-period or --cpu-quota');
  if (period !== undefined) out.cpuPeriod = period;
  if (quota !== undefined) out.cpuQuota = quota;
  if (f.memorySwap !== undefined) {
    if (memoryBytes === undefined) throw bad('--memory-swap needs --memory (the limit of memory and swap together)');
    if (f.memorySwap === '-1') out.memorySwap = 'unlimited';
    else {
      const swap = ramInBytes(f.memorySwap);
      if (swap === undefined) throw bad(`--memory-swap: expected a size such as 1g, or -1 for unlimited swap, got "${f.memorySwap}"`);
      if (swap < memoryBytes) throw bad('--memory-swap: the limit of memory and swap together must be at least --memory');
      out.memorySwap = swap;
    }
  }
  const cpusetCpus = cpuList(f.cpusetCpus, '--cpuset-cpus');
  if (cpusetCpus !== undefined) out.cpusetCpus = cpusetCpus;
  const cpusetMems = cpuList(f.cpusetMems, '--cpuset-mems');
  if (cpusetMems !== undefined) out.cpusetMems = cpusetMems;
  if (f.cgroupParent !== undefined) {
    const parts = f.cgroupParent.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0 || parts.includes('..')) throw bad(`--cgroup-parent: expected a cgroup path such as ci/builds, got "${f.cgroupParent}"`);
    out.cgroupParent = parts.join('/');
  }
  return out;
}
