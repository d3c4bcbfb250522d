// `npm run bench`: kiln's own benchmarks, then kiln over the peer cases (cold, cached, one file
// changed, export), medians printed. `npm run bench -- --peers` sets up the peer builders with
// ../shared/peers/run.sh and runs every case for kiln and the peers side by side, alternating
// between builders, then prints each builder's median and kiln's ratio to it.
//
//   npm run bench -- [--peers] [--no-setup] [--keep] [--runs N] [--cases a,b] [--builders "x y"]
//                    [--small] [--skip-own] [--only-own] [--markdown FILE]
//   --table-only   print the table of the last measurement again (no measuring)
//   --results a,b  with --table-only: the samples of several runs (compare.sh's RESULTS_NAME), as one table
//
// The measuring loop is bench/peers/compare.sh (bash, built on run.sh's own functions, so every
// builder is driven exactly as run.sh drives it); this file orchestrates and makes the table.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, sharedDir } from '../test/helpers/paths.js';
import { parseArgs, flagBool, flagString, type FlagSpec } from '../src/cli/args.js';
import { KilnError, errorMessage } from '../src/util/errors.js';
import { buildTable, renderTable, parseSamples } from './peers/table.js';

/** Benchmarks other issues asked for: module (dist/bench/NAME.js) exporting `bench*()` functions. */
const OWN_BENCHES = ['parse', 'export', 'run-overhead', 'rebuild', 'registry', 'from-image'];
const KILN_CASES = 'runsteps copyheavy multistage runtrue50 largecontext layers200 unpackrootfs';
const PEER_BUILDERS = 'docker_buildkit buildah_oci podman';

const FLAGS: FlagSpec[] = [
  { name: 'peers', kind: 'boolean' },
  { name: 'no-setup', kind: 'boolean' },
  { name: 'keep', kind: 'boolean' },
  { name: 'runs', kind: 'string' },
  { name: 'cases', kind: 'string' },
  { name: 'builders', kind: 'string' },
  { name: 'small', kind: 'boolean' },
  { name: 'skip-own', kind: 'boolean' },
  { name: 'only-own', kind: 'boolean' },
  { name: 'markdown', kind: 'string' },
  { name: 'table-only', kind: 'boolean' },
  { name: 'results', kind: 'string' },
];

const peersDir = join(sharedDir, 'peers');
const runSh = join(peersDir, 'run.sh');
const compareSh = join(repoRoot, 'bench', 'peers', 'compare.sh');
const workDir = process.env.PEERBENCH_DIR ?? '/tmp/peerbench';

function say(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function bash(args: string[], env: NodeJS.ProcessEnv): number {
  const r = spawnSync('bash', args, { stdio: 'inherit', env });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

/** Alive and ours: run.sh's own test (its command line names the work dir). */
function registryRunning(): boolean {
  try {
    const pid = readFileSync(join(workDir, 'pids', 'registry.pid'), 'utf8').trim();
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${workDir}/`);
  } catch {
    return false;
  }
}

async function runOwnBenches(): Promise<void> {
  for (const name of OWN_BENCHES) {
    const file = join(repoRoot, 'dist', 'bench', `${name}.js`);
    if (!existsSync(file)) {
      say(`${name}: skipped (bench/${name}.ts not written yet)`);
      continue;
    }
    let mod: Record<string, unknown>;
    try {
      mod = (await import(file)) as Record<string, unknown>;
    } catch (err) {
      say(`${name}: could not load: ${errorMessage(err)}`);
      continue;
    }
    const fns = Object.entries(mod).filter(([k, v]) => k.startsWith('bench') && typeof v === 'function');
    if (fns.length === 0) say(`${name}: no bench*() export; skipped`);
    for (const [fnName, fn] of fns) {
      say(`${name}: ${fnName}()`);
      try {
        const figures: unknown = await (fn as () => unknown)();
        process.stdout.write(`\n## ${name}: ${fnName}\n${formatFigures(figures)}\n`);
      } catch (err) {
        process.stdout.write(`\n## ${name}: ${fnName}\nFAILED: ${errorMessage(err)}\n`);
      }
    }
  }
}

/** Whatever shape a bench*() returns: rows become a table, objects key: value lines. */
export function formatFigures(v: unknown, indent = ''): string {
  if (Array.isArray(v) && v.length > 0 && v.every((r) => typeof r === 'object' && r !== null && !Array.isArray(r))) {
    const rows = v as Record<string, unknown>[];
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const cells = [cols, ...rows.map((r) => cols.map((c) => scalar(r[c])))];
    const widths = cols.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
    return cells.map((row) => indent + row.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    return Object.entries(v)
      .map(([k, x]) => (typeof x === 'object' && x !== null ? `${indent}${k}:\n${formatFigures(x, indent + '  ')}` : `${indent}${k}: ${scalar(x)}`))
      .join('\n');
  }
  return indent + scalar(v);
}

function scalar(x: unknown): string {
  if (typeof x === 'number') return Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 2 : 1);
  if (x === undefined || x === null) return '-';
  return typeof x === 'object' ? JSON.stringify(x) : String(x);
}

async function main(): Promise<number> {
  const a = parseArgs(process.argv.slice(2), FLAGS, 'bench');
  const peers = flagBool(a, 'peers');
  const runs = flagString(a, 'runs') ?? process.env.RUNS ?? '3';
  if (!/^[1-9]\d*$/.test(runs)) throw new KilnError(`--runs: expected a positive integer, got "${runs}"`, { exitCode: 2 });
  const cases = (flagString(a, 'cases') ?? process.env.CASES ?? KILN_CASES).split(/[\s,]+/).filter(Boolean).join(' ');
  const builders = flagString(a, 'builders') ?? process.env.BUILDERS ?? (peers ? `${PEER_BUILDERS} kiln` : 'kiln');
  const small = flagBool(a, 'small') || process.env.SMALL === '1';

  const builderList = (b: string) => (b.includes('kiln') ? b : `${b} kiln`).split(/\s+/).filter(Boolean);
  if (flagBool(a, 'table-only')) return printTable(flagString(a, 'markdown'), (flagString(a, 'results') ?? process.env.RESULTS_NAME ?? 'kiln').split(','));
  if (!flagBool(a, 'skip-own')) await runOwnBenches();
  if (flagBool(a, 'only-own')) return 0;
  if (!existsSync(runSh)) throw new KilnError(`no peer harness at ${runSh} (../shared/peers beside the checkout)`);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RUNS: runs,
    CASES: cases,
    BUILDERS: builderList(builders).join(' '),
    SMALL: small ? '1' : '0',
    PEERBENCH_DIR: workDir,
    EXTRA_BUILDERS: join(repoRoot, 'bench', 'peers', 'kiln-builder.sh'),
  };
  const wasRunning = registryRunning();
  let started = false;
  let status = 0;
  try {
    if (peers && !flagBool(a, 'no-setup')) {
      say(`setting up the peers: ${runSh} setup`);
      started = true;
      if (bash([runSh, 'setup'], env) !== 0) throw new KilnError('peer setup failed (see its output above)');
    } else if (!peers) {
      started = !wasRunning;
      if (bash([compareSh, runSh, 'kiln-setup'], env) !== 0) throw new KilnError('registry/base image setup failed');
    }
    say(`measuring: builders ${env.BUILDERS}; cases ${cases}; ${runs} runs${small ? '; SMALL=1' : ''}`);
    status = bash([compareSh, runSh, 'bench'], env);
  } finally {
    if (started && !flagBool(a, 'keep')) {
      say('stopping the daemons the benchmark started');
      bash([runSh, 'teardown'], env);
    }
  }
  printTable(flagString(a, 'markdown'));
  return status;
}

/** The builders in the order the samples name them first (the order of the run). */
function printTable(markdownFile: string | undefined, runs: string[] = [process.env.RESULTS_NAME ?? 'kiln']): number {
  const dirs = runs.map((r) => join(workDir, 'results', r));
  const samples = dirs.flatMap((d) => {
    const f = join(d, 'samples.tsv');
    if (!existsSync(f)) throw new KilnError(`no measurement to show: ${f} does not exist`);
    return parseSamples(readFileSync(f, 'utf8'));
  });
  const builders = [...new Set(samples.map((s) => s.builder))];
  const versions = dirs
    .map((d) => join(d, 'versions.txt'))
    .filter((f) => existsSync(f))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const text = renderTable(buildTable(samples, builders), versions);
  process.stdout.write(`\n${text}`);
  writeFileSync(join(dirs[0]!, 'table.md'), text);
  if (markdownFile) writeFileSync(markdownFile, text);
  say(`table: ${join(dirs[0]!, 'table.md')}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${errorMessage(err)}\n`);
    process.exit(err instanceof KilnError ? err.exitCode : 1);
  },
);
