// The contract between the solver and the workers: one op plus its resolved inputs in,
// one snapshot out. Workers know nothing of the graph beyond the op they are given.

import type { Store } from '../store/store.js';
import type { AgentSource } from './ssh/source.js';

/** A filesystem: snapshot ids bottom (base) to top, each folder in overlay format. */
export interface StateInput {
  kind: 'state';
  layers: string[];
}

/** A host folder (the build context), seen through its ignore patterns. */
export interface ContextInput {
  kind: 'context';
  dir: string;
  excludePatterns: string[];
}

export type ResolvedInput = StateInput | ContextInput;

/** One --ulimit: a resource limit the step's processes start with. */
export interface Ulimit {
  /** Docker's name: nofile, nproc, core, stack, ... */
  name: string;
  soft: number | 'unlimited';
  hard: number | 'unlimited';
}

export interface ResourceLimits {
  memoryBytes?: number;
  /** --memory-swap: memory and swap together; without it a step gets no swap. */
  memorySwap?: number | 'unlimited';
  pids?: number;
  cpus?: number;
  /** --cpu-shares: relative weight (Docker's 2-262144, 1024 the default). */
  cpuShares?: number;
  /** --cpu-period / --cpu-quota in microseconds (the CFS bandwidth, like --cpus). */
  cpuPeriod?: number;
  cpuQuota?: number;
  /** --cpuset-cpus / --cpuset-mems: CPUs and memory nodes, as `0-3` or `0,2`. */
  cpusetCpus?: string;
  cpusetMems?: string;
  /** --cgroup-parent: the cgroup (from each hierarchy's root) the steps' cgroups go below. */
  cgroupParent?: string;
  /** --shm-size: the size of the step's /dev/shm (64 MiB without it). */
  shmBytes?: number;
  ulimits?: Ulimit[];
}

export interface WorkerContext {
  store: Store;
  /** `--secret id=...` contents by id. Never written into a layer, a key or a log. */
  secrets: Map<string, Buffer>;
  /** `--ssh ID[=SOCKET|KEYFILE,...]` agents by id (`default` alone: $SSH_AUTH_SOCK). */
  sshAgents: Map<string, AgentSource>;
  limits: ResourceLimits;
  /** `--allow security.insecure` was given. */
  allowInsecure: boolean;
  /** SOURCE_DATE_EPOCH in seconds, when set. */
  sourceDateEpoch?: number;
  /**
   * A COPY may link unchanged files from its previous snapshot instead of copying them
   * (false under --no-cache, which trusts nothing made before).
   */
  reuseEarlierFiles?: boolean;
  /**
   * Lookups that stay valid for one step, shared between its cache key, its --explain record
   * and its run (the solver gives each step a fresh one; without it nothing is shared).
   */
  stepMemo?: WeakMap<object, unknown>;
  signal: AbortSignal;
  /** The step's output as it comes, for progress and for the failure message. */
  onOutput(chunk: Buffer, stream: 'stdout' | 'stderr'): void;
}

export interface StepOutput {
  /** The new layer's snapshot id (the id the solver asked for), or null when nothing changed. */
  snapshot: string | null;
}
