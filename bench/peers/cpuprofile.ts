// Summarises a V8 .cpuprofile (from `node --cpu-prof`): where the main thread's time went, by
// function (self time), by source area (src/solver, src/worker/..., node: internals, GC) and
// the idle share (waiting on children, disk or the network).
//
//   node dist/bench/peers/cpuprofile.js FILE.cpuprofile [TOP] [--timeline MS]

import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  wallMs: number;
  byFunction: { name: string; selfMs: number; share: number }[];
  byArea: { area: string; selfMs: number; share: number }[];
}

/** Which part of kiln (or of node) a frame belongs to. */
export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (functionName === '(idle)') return '(idle: waiting on children, disk, network)';
  if (functionName === '(garbage collector)') return '(garbage collector)';
  if (functionName === '(program)') return '(program: native, outside JS)';
  if (url === '') return '(native/builtin)';
  const src = /\/dist\/((?:src|bench)\/[^/]+(?:\/[^/]+)?)\//.exec(url) ?? /\/dist\/((?:src|bench)\/[^/]+)/.exec(url);
  if (src) return src[1]!;
  const mod = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (mod) return `npm:${mod[1]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url;
}

export function summarise(p: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // A sample's delta is the time since the previous sample; charge it to that sample's node.
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  }
  const wallMs = (p.endTime - p.startTime) / 1000;
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  for (const [id, ms] of self) {
    const f = byId.get(id)!.callFrame;
    const file = f.url.replace(/^.*\/dist\//, '').replace(/^file:\/\//, '');
    const key = `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + ms);
    const a = areaOf(f);
    area.set(a, (area.get(a) ?? 0) + ms);
  }
  const rank = (m: Map<string, number>) =>
    [...m].sort((x, y) => y[1] - x[1]).map(([name, selfMs]) => ({ name, selfMs, share: selfMs / wallMs }));
  return {
    wallMs,
    byFunction: rank(fn).slice(0, top),
    byArea: rank(area).map(({ name, selfMs, share }) => ({ area: name, selfMs, share })),
  };
}

/**
 * What the main thread did over time: per bucket of `bucketMs`, the share of samples by the
 * innermost kiln frame on the stack (or idle/GC/node when no kiln frame is), largest first.
 */
export function timeline(p: CpuProfile, bucketMs: number): string[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = new Map<number, string>();
  const labelOf = (id: number): string => {
    const known = label.get(id);
    if (known) return known;
    let x: number | undefined = id;
    let out = areaOf(byId.get(id)!.callFrame);
    while (x !== undefined) {
      const f = byId.get(x)!.callFrame;
      if (/\/dist\/src\//.test(f.url)) {
        out = `${f.functionName || '(anonymous)'} (${f.url.replace(/^.*\/dist\//, '')})`;
        break;
      }
      x = parent.get(x);
    }
    label.set(id, out);
    return out;
  };
  const buckets: Map<string, number>[] = [];
  let t = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += (p.timeDeltas[i] ?? 0) / 1000;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const b = (buckets[Math.floor(t / bucketMs)] ??= new Map());
    const l = labelOf(p.samples[i]!);
    b.set(l, (b.get(l) ?? 0) + dt);
  }
  return buckets.map((b, i) => {
    const top = [...(b ?? new Map<string, number>())].sort((x, y) => y[1] - x[1]).slice(0, 3);
    return `${String(i * bucketMs).padStart(6)} ms  ${top.map(([k, v]) => `${((v / bucketMs) * 100).toFixed(0)}% ${k}`).join(' | ')}`;
  });
}

export function renderSummary(s: ProfileSummary): string {
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)}%`;
  const ms = (x: number) => `${x.toFixed(0).padStart(7)} ms`;
  return [
    `wall ${s.wallMs.toFixed(0)} ms`,
    'by area (self time):',
    ...s.byArea.map((a) => `  ${ms(a.selfMs)} ${pct(a.share)}  ${a.area}`),
    'top functions (self time):',
    ...s.byFunction.map((f) => `  ${ms(f.selfMs)} ${pct(f.share)}  ${f.name}`),
  ].join('\n');
}

if (process.argv[1]?.endsWith('/bench/peers/cpuprofile.js')) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/peers/cpuprofile.js FILE.cpuprofile [TOP] [--timeline MS]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const t = process.argv.indexOf('--timeline');
  if (t > 0) process.stdout.write(timeline(profile, Number(process.argv[t + 1] ?? 250)).join('\n') + '\n');
  else process.stdout.write(renderSummary(summarise(profile, Number(process.argv[3] ?? 25))) + '\n');
}
