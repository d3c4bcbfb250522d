// Benchmark: kiln's rebuilds of the three peer cases (../shared/peers/cases): cached (nothing
// changed) and incr (one small context file rewritten), measured as run.sh measures every
// builder: wall time of the whole `kiln build` process, median of RUNS, after a warm-up build.
// Contexts are generated as run.sh generates them (`small`: copyheavy with 1 MB blobs and 500
// small files). The base is busybox:bench, made in a fresh store from the host's static busybox.
// Runnable alone (`node dist/bench/rebuild.js [--runs N] [--small]`) or from the bench driver.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kilnBin, sharedDir } from '../test/helpers/paths.js';
import { makeBusyboxRootfs, BUSYBOX_DOCKERFILE } from '../test/helpers/busybox.js';

export type RebuildCase = 'runsteps' | 'copyheavy' | 'multistage';

export interface RebuildResult {
  name: string;
  case: RebuildCase;
  /** Median ms of a rebuild with nothing changed. */
  cachedMs: number;
  /** Median ms of a rebuild after one small context file changed. */
  incrMs: number;
  runs: number;
}

/** The file run.sh's incremental measurement rewrites, per case. */
const TOUCH: Record<RebuildCase, string> = {
  runsteps: 'app/config.txt',
  copyheavy: 'small/d25/f02542.txt',
  multistage: 'a/input.txt',
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function kiln(args: string[]): Promise<number> {
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const c = spawn(kilnBin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`kiln ${args.join(' ')} exited ${code}:\n${err.slice(-2000)}`))));
  });
  return performance.now() - t0;
}

async function writeContext(dir: string, c: RebuildCase, small: boolean): Promise<void> {
  const put = async (p: string, data: string | Buffer) => {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), data);
  };
  await put('Dockerfile', await readFile(join(sharedDir, 'peers', 'cases', `${c}.Dockerfile`)));
  if (c === 'runsteps') await put('app/config.txt', 'config v0\n');
  if (c === 'multistage') {
    await put('a/input.txt', 'input a v0\n');
    await put('b/input.txt', 'input b v0\n');
  }
  if (c === 'copyheavy') {
    for (let i = 1; i <= 3; i++) await put(`big/blob${i}.bin`, randomBytes((small ? 1 : 20) * 1024 * 1024));
    // 50 folders x 100 files as run.sh (small: 50 x 10); the touched file exists either way.
    for (let i = 0; i < 50; i++) {
      for (let j = 0; j < (small ? 10 : 100); j++) {
        const d = `small/d${String(i).padStart(2, '0')}`;
        await put(`${d}/f${String(i * 100 + j).padStart(5, '0')}.txt`, `file ${i}/${j} abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\n`);
      }
    }
    if (small) await put(TOUCH.copyheavy, 'file 25/42 touched-file\n');
  }
}

export async function benchRebuild(opts: { runs?: number; small?: boolean; cases?: RebuildCase[] } = {}): Promise<RebuildResult[]> {
  const runs = opts.runs ?? 5;
  const cases = opts.cases ?? ['runsteps', 'copyheavy', 'multistage'];
  const dir = await mkdtemp(join(tmpdir(), 'kiln-bench-rebuild-'));
  try {
    const root = join(dir, 'store');
    const rootfs = join(dir, 'rootfs');
    await makeBusyboxRootfs(rootfs);
    await writeFile(join(rootfs, 'Dockerfile'), BUSYBOX_DOCKERFILE);
    await kiln(['build', '--root', root, '-t', 'busybox:bench', '-q', rootfs]);
    const out: RebuildResult[] = [];
    for (const c of cases) {
      const ctx = join(dir, c);
      await writeContext(ctx, c, opts.small ?? false);
      const build = () => kiln(['build', '--root', root, '--build-arg', 'BASE=busybox:bench', '-t', `bench-${c}`, '--progress', 'plain', ctx]);
      await build(); // cold
      await build(); // warm-up, as run.sh
      const cached: number[] = [];
      for (let i = 0; i < runs; i++) cached.push(await build());
      const incr: number[] = [];
      for (let i = 0; i < runs; i++) {
        await writeFile(join(ctx, TOUCH[c]), `changed kiln ${i} ${Date.now()}\n`);
        incr.push(await build());
      }
      out.push({ name: `rebuild ${c}`, case: c, cachedMs: median(cached), incrMs: median(incr), runs });
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const results = await benchRebuild({ runs: runsAt >= 0 ? Number(args[runsAt + 1]) : undefined, small: args.includes('--small') });
  console.log('case         cached(ms)   incr(ms)   (median of runs)');
  for (const r of results) console.log(`${r.case.padEnd(12)} ${r.cachedMs.toFixed(0).padStart(10)} ${r.incrMs.toFixed(0).padStart(10)}   (${r.runs})`);
}
