// Spawns native/build/kiln-sandbox for one step (Node cannot fork into namespaces itself),
// feeds it the spec, streams the step's output and collects its status lines.

import type { ChildProcess } from 'node:child_process';
import { childProcess } from '../../util/lazy-modules.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { KilnError } from '../../util/errors.js';
import { packageRoot } from '../../util/package-root.js';
import { parseStatus, type SandboxStatus } from './spec.js';

export const helperPath = process.env.KILN_SANDBOX_HELPER ?? join(packageRoot(), 'native', 'build', 'kiln-sandbox');

/** Phase timings of the last sandbox that reported them (KILN_SANDBOX_TIMING), for bench/. */
export let lastTimings: Record<string, number> = {};

/** Helpers still running, killed if kiln exits without waiting for them. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

export interface SandboxRun {
  pid: number;
  /** Ends the step: the helper kills the step's PID 1, whose namespace takes every other process with it. */
  stop(): void;
  done: Promise<SandboxStatus>;
}

let helperFound = false;

/**
 * The helper's environment: nothing of kiln's (the step's comes in the spec), so spawn does not
 * copy all of process.env for every RUN (about 0.5 ms each here).
 */
function helperEnv(): NodeJS.ProcessEnv {
  const timing = process.env.KILN_SANDBOX_TIMING;
  return timing === undefined ? {} : { KILN_SANDBOX_TIMING: timing };
}

export function startSandbox(spec: Buffer, onOutput: (chunk: Buffer, stream: 'stdout' | 'stderr') => void): SandboxRun {
  if (!helperFound && !existsSync(helperPath)) throw new KilnError(`the sandbox helper is not built (${helperPath}); run \`npm run build\``);
  helperFound = true;
  installExitHook();
  // fd 3 is a socket both ways: the spec goes out (end() shuts our side down, the helper reads
  // to EOF), status lines come back. One socket pair fewer per RUN than a pipe for each.
  const child = childProcess().spawn(helperPath, [], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: helperEnv() });
  live.add(child);
  const control = child.stdio[3] as Duplex;
  // The helper may die before reading it all (a spawn failure): that is reported by its exit.
  control.on('error', () => {});
  control.end(spec);
  let status = '';
  control.setEncoding('utf8');
  control.on('data', (d: string) => (status += d));
  child.stdout!.on('data', (d: Buffer) => onOutput(d, 'stdout'));
  child.stderr!.on('data', (d: Buffer) => onOutput(d, 'stderr'));
  let killTimer: NodeJS.Timeout | undefined;
  const done = new Promise<SandboxStatus>((resolve, reject) => {
    child.on('error', (err) => {
      live.delete(child);
      reject(new KilnError(`cannot start the sandbox helper: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      live.delete(child);
      if (killTimer) clearTimeout(killTimer);
      const st = parseStatus(status);
      if (Object.keys(st.timings).length > 0) lastTimings = st.timings;
      if (st.exitCode === undefined && st.signal === undefined && st.setupError === undefined) {
        st.setupError = signal ? `sandbox helper killed by ${signal}` : `sandbox helper exited with code ${code}`;
      }
      resolve(st);
    });
  });
  return {
    pid: child.pid ?? -1,
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      // The helper answers SIGTERM at once; if it is stuck, kill it (its step dies with it).
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), 2000);
    },
    done,
  };
}
