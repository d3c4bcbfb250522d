// What a killed kiln leaves of its sandboxes: never a mount (they live in the steps' own mount
// namespaces) nor a process (they die with their helper), but step cgroups, and scratch
// folders in the store's tmp/ (those the store's own open() sweeps).

import type { Store } from '../../store/store.js';
import { sweepStaleTemp } from '../../store/sweep.js';
import { sweepStaleCgroups } from './cgroups.js';

/** For the solver to call at start; returns what it removed. */
export async function sweepStaleSandboxes(store: Store): Promise<string[]> {
  const cgroups = await sweepStaleCgroups();
  const tmp = await sweepStaleTemp(store.path('tmp'));
  return [...cgroups, ...tmp];
}
