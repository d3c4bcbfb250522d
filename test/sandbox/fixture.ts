// A store with a busybox base snapshot, and a WorkerContext around it, for calling runExec
// directly (the CLI end-to-end tests live in cli.test.ts).

import { mkdir, lstat, readdir, readlink, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Store } from '../../src/store/store.js';
import type { ExecOp } from '../../src/graph/ops.js';
import type { ResolvedInput, WorkerContext, ResourceLimits } from '../../src/worker/types.js';
import { runExec } from '../../src/worker/exec/index.js';
import { makeBusyboxRootfs } from '../helpers/busybox.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { getXattr } from '../../src/util/syscalls.js';

export interface Fixture {
  store: Store;
  base: string;
  /** Runs `sh -c script` over `layers` (default: the busybox base); returns the snapshot id or null. */
  run(script: string, opts?: RunOpts): Promise<{ snapshot: string | null; output: string }>;
  /** Removes the store (call from the test file's `after`). */
  dispose(): Promise<void>;
}

export interface RunOpts {
  layers?: string[];
  op?: Partial<ExecOp>;
  ctx?: Partial<WorkerContext>;
  limits?: ResourceLimits;
  inputs?: ResolvedInput[];
}

export async function makeFixture(): Promise<Fixture> {
  // Not test/helpers' tempDir: its `after` hook would fire when a `before` hook creating it ends.
  const root = await mkdtemp(join(tmpdir(), 'kiln-sandbox-test-'));
  const store = await Store.open(join(root, 'store'));
  const staged = await store.tempDir('busybox');
  await makeBusyboxRootfs(staged);
  await store.commitSnapshot('busybox', staged, { source: 'layer' });
  const fixture: Fixture = {
    store,
    base: 'busybox',
    dispose: () => rm(root, { recursive: true, force: true }),
    async run(script, opts = {}) {
      let output = '';
      const ctx: WorkerContext = {
        store,
        secrets: new Map(),
        sshAgents: new Map(),
        limits: opts.limits ?? {},
        allowInsecure: false,
        signal: new AbortController().signal,
        onOutput: (c) => (output += c.toString()),
        ...opts.ctx,
      };
      const op: ExecOp = {
        kind: 'exec',
        args: ['/bin/sh', '-c', script],
        env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        cwd: '/',
        user: '',
        network: 'default',
        security: 'sandbox',
        mounts: [],
        files: [],
        ...opts.op,
      };
      const inputs: ResolvedInput[] = opts.inputs ?? [{ kind: 'state', layers: opts.layers ?? ['busybox'] }];
      const id = `run-${randomBytes(6).toString('hex')}`;
      try {
        const r = await runExec(op, inputs, ctx, id);
        return { snapshot: r.snapshot, output };
      } catch (err) {
        (err as Error & { output?: string }).output = output;
        throw err;
      }
    },
  };
  return fixture;
}

/** A snapshot's tree as sorted lines: `path type [detail]`, whiteouts and opaque dirs marked. */
export async function describeTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(dir, r);
      const st = await lstat(p);
      if (st.isCharacterDevice() && st.rdev === 0) out.push(`${r} whiteout`);
      else if (st.isDirectory()) {
        const opaque = getXattr(p, 'trusted.overlay.opaque')?.toString() === 'y';
        out.push(`${r}/${opaque ? ' opaque' : ''}`);
        await walk(r);
      } else if (st.isSymbolicLink()) out.push(`${r} -> ${await readlink(p)}`);
      else if (st.isFile()) out.push(`${r} = ${JSON.stringify((await readFile(p, 'utf8')).slice(0, 40))}${st.nlink > 1 ? ` nlink=${st.nlink}` : ''}`);
      else out.push(`${r} other`);
    }
  }
  await walk('');
  return out;
}

export async function ensureDir(p: string): Promise<void> {
  await mkdir(p, { recursive: true });
}
