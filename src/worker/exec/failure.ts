// The message of a RUN that did not succeed: what ran, how it ended, why when a limit
// did it, and the end of its output.

import type { ResourceLimits } from '../types.js';
import type { SandboxStatus } from '../sandbox/spec.js';
import { constants } from 'node:os';

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && v % 1024 === 0 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v} ${units[i]}`;
}

function signalName(n: number): string {
  const e = Object.entries(constants.signals).find(([, v]) => v === n);
  return e ? e[0] : `signal ${n}`;
}

export function describeFailure(
  args: string[],
  status: SandboxStatus,
  why: { oomKilled: boolean; pidsKilled: boolean; limits: ResourceLimits; tail: string[] },
): string {
  const cmd = JSON.stringify(args.join(' '));
  let how: string;
  if (why.oomKilled) how = `killed: out of memory, limit ${formatBytes(why.limits.memoryBytes ?? 0)}`;
  else if (why.pidsKilled) how = `killed: process limit reached, limit ${why.limits.pids} processes`;
  else if (status.signal !== undefined) how = `killed by ${signalName(status.signal)}`;
  else how = `exit code: ${status.exitCode}`;
  const lines = [`process ${cmd} did not complete successfully: ${how}`];
  if (why.tail.length > 0) lines.push('last lines of its output:', ...why.tail.map((l) => `  ${l}`));
  return lines.join('\n');
}
