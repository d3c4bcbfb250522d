// Benchmark: fifty `RUN true` steps through runExec on a busybox base; the sandbox's overhead
// per step (median) is the step's time minus the time of running `true` without it
// (a plain spawn from Node). Target: under 5 ms.
// Runnable alone (`node dist/bench/run-overhead.js`) or through the `npm run bench` driver.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../src/store/store.js';
import { runExec } from '../src/worker/exec/index.js';
import type { ExecOp } from '../src/graph/ops.js';
import type { WorkerContext } from '../src/worker/types.js';
import { makeBusyboxRootfs } from '../test/helpers/busybox.js';
import * as helper from '../src/worker/sandbox/helper.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn('/bin/true', [], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.on('error', reject);
    c.on('close', () => resolve());
  });
}

export interface RunOverhead {
  name: string;
  medianMs: number;
  stepMs: number;
  commandMs: number;
  /** Median milliseconds from the helper's start to each of its phases. */
  helperPhasesMs: Record<string, number>;
}

export async function benchRunOverhead(runs = 50): Promise<RunOverhead> {
  const hadTiming = process.env.KILN_SANDBOX_TIMING;
  process.env.KILN_SANDBOX_TIMING = '1';
  const root = await mkdtemp(join(tmpdir(), 'kiln-bench-run-'));
  try {
    const store = await Store.open(join(root, 'store'));
    const staged = await store.tempDir('busybox');
    await makeBusyboxRootfs(staged);
    await store.commitSnapshot('busybox', staged, { source: 'layer' });
    const ctx: WorkerContext = {
      store, secrets: new Map(), sshAgents: new Map(), limits: {}, allowInsecure: false,
      signal: new AbortController().signal, onOutput: () => {},
    };
    const op: ExecOp = {
      kind: 'exec', args: ['true'], env: [], cwd: '/', user: '', network: 'default', security: 'sandbox', mounts: [], files: [],
    };
    const inputs = [{ kind: 'state' as const, layers: ['busybox'] }];
    for (let i = 0; i < 3; i++) {
      await runExec(op, inputs, ctx, `warm${i}`);
      await spawnTrue();
    }
    const steps: number[] = [];
    const phases: Record<string, number[]> = {};
    const commands: number[] = [];
    for (let i = 0; i < runs; i++) {
      let t0 = performance.now();
      await runExec(op, inputs, ctx, `step${i}`);
      steps.push(performance.now() - t0);
      for (const [k, us] of Object.entries(helper.lastTimings)) (phases[k] ??= []).push(us / 1000);
      t0 = performance.now();
      await spawnTrue();
      commands.push(performance.now() - t0);
    }
    const stepMs = median(steps);
    const commandMs = median(commands);
    const helperPhasesMs = Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Number(median(v).toFixed(3))]));
    return { name: `sandbox overhead per RUN (${runs} x RUN true)`, medianMs: stepMs - commandMs, stepMs, commandMs, helperPhasesMs };
  } finally {
    if (hadTiming === undefined) delete process.env.KILN_SANDBOX_TIMING;
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await benchRunOverhead();
  process.stdout.write(
    `${r.name}: median ${r.medianMs.toFixed(2)} ms (target < 5 ms); step ${r.stepMs.toFixed(2)} ms, plain spawn of true ${r.commandMs.toFixed(2)} ms\n` +
      `helper phases (ms since its start): ${Object.entries(r.helperPhasesMs).map(([k, v]) => `${k} ${v}`).join(', ')}\n`,
  );
}
