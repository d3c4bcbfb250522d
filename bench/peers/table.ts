// The comparison table: medians per builder, case and phase from compare.sh's samples.tsv,
// kiln's ratio to each peer against issue 7's targets, export sizes, kiln's peak memory and
// the per-step cost of the fifty `RUN true` case.

import { availableParallelism } from 'node:os';

const cpus = availableParallelism();

export interface Sample {
  builder: string;
  caseName: string;
  metric: string;
  run: number;
  value: number | null;
  ok: boolean;
}

/** A median, or why there is none. */
export type Figure = number | 'FAIL' | undefined;

export const PHASES = ['cold', 'cached', 'incr', 'export', 'export_oci', 'export_zstd'] as const;
export type Phase = (typeof PHASES)[number];

const PHASE_LABEL: Record<Phase, string> = {
  cold: 'cold',
  cached: 'cached (no change)',
  incr: 'one file changed',
  export: 'export docker tar',
  export_oci: 'export OCI tar.gz',
  export_zstd: 'export OCI zstd',
};

/** kiln's time over BuildKit's must stay at or under these (issue 7). */
const BUILDKIT_TARGETS: Partial<Record<Phase, number>> = { cold: 0.5, cached: 1.0, incr: 0.3, export: 0.5 };
/** ...and over buildah's and podman's, every phase. */
const OTHER_TARGET = 0.5;
const RSS_TARGET_MB = 200;
/** The case whose per-step figure is (one file changed - cached) / steps. */
const STEP_CASE = { name: 'runtrue50', steps: 51 };

export function parseSamples(tsv: string): Sample[] {
  return tsv
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [builder = '', caseName = '', metric = '', run = '0', value = 'NA', status = ''] = l.split('\t');
      const n = Number(value);
      return { builder, caseName, metric, run: Number(run), value: Number.isFinite(n) ? n : null, ok: status === 'ok' };
    });
}

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function figure(samples: Sample[], builder: string, caseName: string, metric: string): Figure {
  const mine = samples.filter((s) => s.builder === builder && s.caseName === caseName && s.metric === metric);
  if (mine.some((s) => !s.ok)) return 'FAIL';
  // compare.sh stops a builder's case at its first failed build: later build phases have no samples.
  const buildPhase = metric === 'cold' || metric === 'cached' || metric === 'incr' || metric === 'export';
  const buildFailed = samples.some((s) => s.builder === builder && s.caseName === caseName && !s.ok && !s.metric.startsWith('export'));
  if (mine.length === 0 && buildPhase && buildFailed) return 'FAIL';
  return median(mine.flatMap((s) => (s.value === null ? [] : [s.value])));
}

export function targetFor(peer: string, phase: Phase): number | undefined {
  if (peer === 'docker_buildkit') return BUILDKIT_TARGETS[phase];
  if (peer.startsWith('buildah') || peer === 'podman') return OTHER_TARGET;
  return undefined;
}

export interface Row {
  caseName: string;
  phase: Phase;
  /** builder -> median seconds */
  times: Map<string, Figure>;
  /** peer -> kiln's time / the peer's, when both have a figure */
  ratios: Map<string, number | undefined>;
}

export interface Table {
  builders: string[];
  peers: string[];
  rows: Row[];
  sizes: { caseName: string; phase: Phase; mb: Map<string, Figure> }[];
  rss: { caseName: string; cold: Figure; cached: Figure; incr: Figure; peak: number | undefined }[];
  perStepMs: Map<string, number | undefined>;
  misses: string[];
  /** 1-minute load average after each build: other work sharing the machine. */
  load: { median: number; max: number } | undefined;
}

export function buildTable(samples: Sample[], builders: string[]): Table {
  const peers = builders.filter((b) => b !== 'kiln');
  const cases = [...new Set(samples.map((s) => s.caseName))];
  const rows: Row[] = [];
  const sizes: Table['sizes'] = [];
  const misses: string[] = [];
  for (const c of cases) {
    for (const phase of PHASES) {
      const times = new Map(builders.map((b) => [b, figure(samples, b, c, phase)] as const));
      if ([...times.values()].every((t) => t === undefined)) continue;
      const kiln = times.get('kiln');
      const ratios = new Map<string, number | undefined>();
      for (const p of peers) {
        const t = times.get(p);
        const r = typeof kiln === 'number' && typeof t === 'number' && t > 0 ? kiln / t : undefined;
        ratios.set(p, r);
        const target = targetFor(p, phase);
        if (target === undefined || t === undefined) continue;
        if (kiln === 'FAIL') misses.push(`${c} / ${PHASE_LABEL[phase]}: kiln failed`);
        else if (r !== undefined && r > target) misses.push(`${c} / ${PHASE_LABEL[phase]}: kiln/${p} = ${r.toFixed(2)} (target ${target})`);
      }
      rows.push({ caseName: c, phase, times, ratios });
      if (phase.startsWith('export')) sizes.push({ caseName: c, phase, mb: new Map(builders.map((b) => [b, figure(samples, b, c, `${phase}_MB`)] as const)) });
    }
  }
  const rss = cases.map((c) => {
    const kilnRss = samples.filter((s) => s.builder === 'kiln' && s.caseName === c && s.metric.endsWith('_rss_MB') && s.value !== null);
    const peak = kilnRss.length ? Math.max(...kilnRss.map((s) => s.value!)) : undefined;
    return {
      caseName: c,
      cold: figure(samples, 'kiln', c, 'cold_rss_MB'),
      cached: figure(samples, 'kiln', c, 'cached_rss_MB'),
      incr: figure(samples, 'kiln', c, 'incr_rss_MB'),
      peak,
    };
  });
  const copyheavy = rss.find((r) => r.caseName === 'copyheavy');
  if (copyheavy?.peak !== undefined && copyheavy.peak > RSS_TARGET_MB) {
    misses.push(`copyheavy: kiln peak RSS ${copyheavy.peak.toFixed(0)} MB (target under ${RSS_TARGET_MB} MB)`);
  }
  const perStepMs = new Map<string, number | undefined>();
  for (const b of builders) {
    const incr = figure(samples, b, STEP_CASE.name, 'incr');
    const cached = figure(samples, b, STEP_CASE.name, 'cached');
    perStepMs.set(b, typeof incr === 'number' && typeof cached === 'number' ? ((incr - cached) * 1000) / STEP_CASE.steps : undefined);
  }
  const loads = samples.filter((s) => s.metric === 'load1' && s.value !== null).map((s) => s.value!);
  const load = loads.length ? { median: median(loads)!, max: Math.max(...loads) } : undefined;
  return { builders, peers, rows, sizes, rss: rss.filter((r) => r.peak !== undefined), perStepMs, misses, load };
}

function sec(f: Figure): string {
  return f === undefined ? '-' : f === 'FAIL' ? 'FAIL' : f.toFixed(2);
}

function ratioCell(r: number | undefined, target: number | undefined): string {
  if (r === undefined) return '-';
  if (target === undefined) return r.toFixed(2);
  return `${r.toFixed(2)} ${r <= target ? 'ok' : `MISS (<=${target})`}`;
}

function mdTable(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** The whole report as markdown (it reads fine on a terminal too). */
export function renderTable(t: Table, versions: string): string {
  const out: string[] = [];
  if (versions.trim()) out.push('```', versions.trim(), '```', '');
  out.push('Seconds, median of the runs; ratio = kiln / peer (targets: issue 7).');
  if (t.load) out.push(`Load average (1 min) after each build: median ${t.load.median.toFixed(1)}, max ${t.load.max.toFixed(1)} (${cpus} CPUs): the machine was shared.`);
  out.push('');
  out.push(
    mdTable(
      ['case', 'phase', ...t.builders, ...t.peers.map((p) => `kiln/${p}`)],
      t.rows.map((r) => [
        r.caseName,
        PHASE_LABEL[r.phase],
        ...t.builders.map((b) => sec(r.times.get(b))),
        ...t.peers.map((p) => ratioCell(r.ratios.get(p), targetFor(p, r.phase))),
      ]),
    ),
  );
  if (t.sizes.length) {
    out.push('', 'Export size, MB:', '');
    out.push(mdTable(['case', 'export', ...t.builders], t.sizes.map((s) => [s.caseName, PHASE_LABEL[s.phase], ...t.builders.map((b) => sec(s.mb.get(b)))])));
  }
  if (t.rss.length) {
    out.push('', `kiln peak memory, MB (max RSS of the largest process, GNU time; target for copyheavy: under ${RSS_TARGET_MB}):`, '');
    out.push(mdTable(['case', 'cold (median)', 'cached (median)', 'one file changed (median)', 'peak of all builds'], t.rss.map((r) => [r.caseName, sec(r.cold), sec(r.cached), sec(r.incr), r.peak === undefined ? '-' : r.peak.toFixed(1)])));
  }
  if ([...t.perStepMs.values()].some((v) => v !== undefined)) {
    out.push('', `Per RUN step, ms: (${STEP_CASE.name} one-file-changed - cached) / ${STEP_CASE.steps} steps (whole step: sandbox, commit, cache record):`, '');
    out.push(mdTable(t.builders, [t.builders.map((b) => { const v = t.perStepMs.get(b); return v === undefined ? '-' : v.toFixed(1); })]));
  }
  if (t.peers.length === 0) out.push('', 'No peer builder in this run: no ratios, no targets checked (npm run bench -- --peers).');
  else out.push('', t.misses.length ? `Targets missed (${t.misses.length}):` : 'Every target met.');
  for (const m of t.misses) out.push(`- ${m}`);
  return out.join('\n') + '\n';
}
