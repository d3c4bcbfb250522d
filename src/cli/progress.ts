// Progress on screen, from solver events: plain (BuildKit's `#N` lines), tty (a live view
// redrawn in place), json (one event per line), quiet (nothing but errors).

import type { BuildEvent, EventSink, StepState } from '../solver/events.js';
import { KilnError } from '../util/errors.js';

export type ProgressMode = 'auto' | 'tty' | 'plain' | 'json' | 'quiet';

export interface Progress {
  sink: EventSink;
  /** Flushes what is pending (the last tty frame). */
  close(): void;
}

/** --progress, else BUILDKIT_PROGRESS (which CI jobs set for docker build), else auto. */
export function parseProgressMode(value: string | undefined, env: NodeJS.ProcessEnv = process.env): ProgressMode {
  const fromEnv = value === undefined ? env.BUILDKIT_PROGRESS || undefined : undefined;
  const v = value ?? fromEnv ?? 'auto';
  if (v === 'auto' || v === 'tty' || v === 'plain' || v === 'json' || v === 'quiet') return v;
  const source = fromEnv !== undefined ? 'BUILDKIT_PROGRESS' : '--progress';
  const hint = v === 'rawjson' ? ' (kiln\'s event stream is json, with its own schema)' : '';
  throw new KilnError(`${source}: expected auto, tty, plain, json or quiet, got "${v}"${hint}`, { exitCode: 2 });
}

export function makeProgress(mode: ProgressMode, out: NodeJS.WriteStream = process.stderr): Progress {
  const chosen = mode === 'auto' ? (out.isTTY ? 'tty' : 'plain') : mode;
  switch (chosen) {
    case 'quiet':
      return { sink: () => {}, close: () => {} };
    case 'json':
      return { sink: (e) => out.write(JSON.stringify(e) + '\n'), close: () => {} };
    case 'tty': {
      // The build closes it before printing its result and again on the way out.
      const p = ttyProgress(out);
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        p.close();
      };
      return { sink: p.sink, close };
    }
    default:
      return plainProgress(out);
  }
}

function seconds(ms: number | undefined): string {
  return `${((ms ?? 0) / 1000).toFixed(1)}s`;
}

/** A log line's time as BuildKit prints it: seconds since its step started, 3 decimals under 10 s, 2 under 100. */
export function logOffset(ms: number): string {
  const sec = ms / 1000;
  return sec.toFixed(sec < 10 ? 3 : sec < 100 ? 2 : 1);
}

function plainProgress(out: NodeJS.WriteStream): Progress {
  const started = new Set<number>();
  const partial = new Map<number, string>();
  const startedAt = new Map<number, number>();
  const t0 = Date.now();
  const header = (seq: number, name: string) => {
    if (started.has(seq)) return;
    started.add(seq);
    out.write(`\n#${seq} ${name}\n`);
  };
  const logLine = (seq: number, line: string) => out.write(`#${seq} ${logOffset(Date.now() - (startedAt.get(seq) ?? t0))} ${line}\n`);
  // Output that did not end in a newline is still a line once its step is over (BuildKit prints it).
  const flushPartial = (seq: number) => {
    const rest = partial.get(seq);
    partial.delete(seq);
    if (rest) logLine(seq, rest);
  };
  const sink: EventSink = (e: BuildEvent) => {
    switch (e.type) {
      case 'step':
        if (e.state === 'waiting') return;
        header(e.seq, e.name);
        if (e.state !== 'running') flushPartial(e.seq);
        if (e.state === 'running') startedAt.set(e.seq, Date.now());
        else if (e.state === 'cached') out.write(`#${e.seq} CACHED\n`);
        else if (e.state === 'done') out.write(`#${e.seq} DONE ${seconds(e.durationMs)}\n`);
        // One line, as BuildKit's: the output it quotes was printed above, and the CLI's last words repeat it all.
        else if (e.state === 'error') out.write(`#${e.seq} ERROR: ${(e.error ?? 'failed').split('\n', 1)[0]}\n`);
        else if (e.state === 'cancelled') out.write(`#${e.seq} CANCELED\n`);
        return;
      case 'log': {
        const text = (partial.get(e.seq) ?? '') + e.data;
        const lines = text.split('\n');
        partial.set(e.seq, lines.pop() ?? '');
        for (const l of lines) logLine(e.seq, l);
        return;
      }
      case 'explain':
        header(e.seq, e.name);
        for (const r of e.reasons) out.write(`#${e.seq} cache miss: ${r}\n`);
        return;
      case 'message':
        out.write(`${e.level === 'warning' ? 'WARNING: ' : ''}${e.text}\n`);
        return;
      case 'result':
        return; // the CLI says what it wrote in its own words
    }
  };
  return { sink, close: () => [...partial.keys()].forEach(flushPartial) };
}

interface Row {
  seq: number;
  name: string;
  state: StepState;
  startedAt?: number;
  durationMs?: number;
  tail: string[];
}

const STATE_LABEL: Record<StepState, string> = {
  waiting: 'waiting',
  running: 'running',
  cached: 'CACHED',
  done: 'done',
  error: 'ERROR',
  cancelled: 'CANCELED',
};

function ttyProgress(out: NodeJS.WriteStream): Progress {
  const rows = new Map<number, Row>();
  const messages: string[] = [];
  let drawnLines = 0;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const t0 = Date.now();

  const frame = (full: boolean): string[] => {
    const width = out.columns || 100;
    const lines: string[] = [];
    for (const r of [...rows.values()].sort((a, b) => a.seq - b.seq)) {
      const elapsed = r.durationMs ?? (r.startedAt !== undefined ? Date.now() - t0 - r.startedAt : 0);
      const time = r.state === 'waiting' || r.state === 'cached' ? '' : ` ${seconds(elapsed)}`;
      lines.push(clip(`#${r.seq} ${STATE_LABEL[r.state].padEnd(7)} ${r.name}${time}`, width));
      if (r.state === 'running' || r.state === 'error') for (const t of r.tail.slice(-3)) lines.push(clip(`     > ${t}`, width));
    }
    // Rows above the screen's top cannot be redrawn: fold the oldest finished steps into one line.
    const room = Math.max(5, (out.rows || 40) - 1);
    if (!full && lines.length > room) {
      const finished = [...rows.values()].sort((a, b) => a.seq - b.seq).filter((r) => r.state === 'done' || r.state === 'cached');
      const fold = Math.min(finished.length, lines.length - room + 1);
      if (fold > 0) {
        const hidden = new Set(finished.slice(0, fold).map((r) => `#${r.seq} `));
        const kept = lines.filter((l) => ![...hidden].some((h) => l.startsWith(h)));
        return [clip(`   ${fold} finished step${fold === 1 ? '' : 's'} above`, width), ...kept];
      }
    }
    return lines;
  };
  // The last frame is drawn whole: it scrolls into the terminal's history, nothing redraws it.
  const draw = (full = false) => {
    timer = undefined;
    const lines = frame(full);
    let s = drawnLines > 0 ? `\x1b[${drawnLines}F` : '';
    // Messages (warnings, cache-miss reasons) go above the live rows once and stay there.
    if (messages.length > 0) s += '\x1b[J' + messages.splice(0).map((m) => `${m}\n`).join('');
    s += lines.map((l) => `\x1b[2K${l}\n`).join('');
    if (drawnLines > lines.length) s += '\x1b[J';
    out.write(s);
    drawnLines = lines.length;
  };
  const schedule = () => {
    if (!closed) timer ??= setTimeout(() => draw(), 100);
  };
  const sink: EventSink = (e) => {
    if (e.type === 'result') return;
    if (e.type === 'message') messages.push(`${e.level === 'warning' ? 'WARNING: ' : ''}${e.text}`);
    else if (e.type === 'explain') messages.push(...e.reasons.map((r) => `cache miss: ${r}`));
    else {
      const row = rows.get(e.seq) ?? { seq: e.seq, name: '', state: 'waiting' as StepState, tail: [] };
      if (e.type === 'step') {
        row.name = e.name;
        row.state = e.state;
        if (e.state === 'running') row.startedAt = e.at;
        if (e.durationMs !== undefined) row.durationMs = e.durationMs;
        if (e.error) row.tail.push(...e.error.split('\n').slice(-3));
      } else {
        row.tail.push(...e.data.split('\n').filter((l) => l.trim() !== ''));
        row.tail.splice(0, Math.max(0, row.tail.length - 20));
      }
      rows.set(e.seq, row);
    }
    schedule();
  };
  return {
    sink,
    close: () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (closed) return;
      closed = true;
      draw(true);
    },
  };
}

function clip(s: string, width: number): string {
  return s.length > width ? s.slice(0, Math.max(0, width - 1)) + '…' : s;
}
