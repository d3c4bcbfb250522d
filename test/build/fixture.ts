// Shared set-up for the build tests: a store holding busybox:test (made from the host's static
// busybox with `kiln build`), contexts written from plain objects, and `kiln build --progress json`
// runs read back as events.
import assert from 'node:assert/strict';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runKiln, type RunResult, type RunOptions } from '../helpers/kiln.js';
import { makeBusyboxRootfs, BUSYBOX_DOCKERFILE } from '../helpers/busybox.js';
import { tempDir } from '../helpers/tmp.js';
import { sharedDir } from '../helpers/paths.js';
import type { BuildEvent, StepEvent } from '../../src/solver/events.js';

export const BASE_REF = 'busybox:test';

/** A fresh store root holding busybox:test. */
export async function busyboxStore(): Promise<string> {
  const dir = await tempDir('kiln-build-');
  const rootfs = join(dir, 'rootfs');
  await makeBusyboxRootfs(rootfs);
  await writeFile(join(rootfs, 'Dockerfile'), BUSYBOX_DOCKERFILE);
  const root = join(dir, 'store');
  const r = await runKiln(['build', '--root', root, '-t', BASE_REF, '--progress', 'quiet', rootfs]);
  assert.equal(r.code, 0, r.stderr);
  return root;
}

/** Writes files (path -> content) under `dir`, making folders as needed. */
export async function writeTree(dir: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), content);
  }
}

export async function peersCase(name: 'runsteps' | 'copyheavy' | 'multistage'): Promise<string> {
  return readFile(join(sharedDir, 'peers', 'cases', `${name}.Dockerfile`), 'utf8');
}

export interface BuildRun extends RunResult {
  events: BuildEvent[];
  steps: StepEvent[];
}

/** `kiln build --progress json` with the events parsed (lines that are not JSON are kept in stderr). */
export async function buildJson(root: string, ctx: string, extra: string[] = [], opts: RunOptions = {}): Promise<BuildRun> {
  const r = await runKiln(['build', '--root', root, '--progress', 'json', ...extra, ctx], opts);
  return { ...r, ...parseEvents(r.stderr) };
}

export function parseEvents(text: string): { events: BuildEvent[]; steps: StepEvent[] } {
  const events: BuildEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    events.push(JSON.parse(line) as BuildEvent);
  }
  return { events, steps: events.filter((e): e is StepEvent => e.type === 'step') };
}

/** The final state of every step that is a Dockerfile instruction (not `[internal]`), by name without the `[stage k/n]` prefix. */
export function finalStates(run: BuildRun): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of run.steps) {
    if (s.name.startsWith('[internal]')) continue;
    if (s.state === 'waiting' || s.state === 'running') {
      if (!out.has(label(s.name))) out.set(label(s.name), s.state);
      continue;
    }
    out.set(label(s.name), s.state);
  }
  return out;
}

export function label(name: string): string {
  return name.replace(/^\[[^\]]*\]\s*/, '');
}

/** Labels of the steps that ran (state 'done'), sorted. */
export function ranSteps(run: BuildRun): string[] {
  return [...finalStates(run)].filter(([, s]) => s === 'done').map(([n]) => n).sort();
}

export function cachedSteps(run: BuildRun): string[] {
  return [...finalStates(run)].filter(([, s]) => s === 'cached').map(([n]) => n).sort();
}

export function assertOk(r: RunResult): void {
  assert.equal(r.code, 0, `kiln failed (${r.code}):\n${r.stderr.slice(-4000)}`);
}

/** The digest `kiln build --iidfile` wrote. */
export async function readIid(file: string): Promise<string> {
  return (await readFile(file, 'utf8')).trim();
}
