// --explain: for a step that ran although the previous build of the same Dockerfile had it
// cached, say what changed. Each build records, per step, what its key was made of; a miss
// is then explained by comparing the parts.

import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_HOSTNAME, type Digest, type ExecOp, type FileOp, type GraphNode, type RunMount } from '../graph/ops.js';
import type { Store } from '../store/store.js';
import type { ResolvedInput, WorkerContext } from '../worker/types.js';
import { canonicalJson, hexOf, sha256 } from '../util/digest.js';
import { GIT_REF } from '../worker/git/ref.js';

/** One selected source file, as a file op's content key saw it. */
export interface ContentEntry {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  linkTarget?: string;
  digest?: string;
}

export interface StepRecord {
  name: string;
  instruction?: string;
  key: Digest;
  op: ExecOp | FileOp;
  inputKeys: Digest[];
  inputNames: string[];
  contentKeys: Digest[];
  /** The files a COPY selected, when the worker can list them (in records of older versions). */
  content?: ContentEntry[];
  /** The files a COPY selected are in the file beside the record (see contentOf). */
  hasContent?: boolean;
  /** When it was recorded (ms since the epoch): the latest record wins a position. */
  at?: number;
  /** The manifest digest of the image the step is built on, when it is the stage's first step. */
  baseDigest?: Digest;
}

/** Optional capability of the file worker: the file list behind fileContentKey. */
export type ContentLister = (op: FileOp, inputs: ResolvedInput[], ctx: WorkerContext) => Promise<ContentEntry[]>;

function dirFor(store: Store, identity: string): string {
  return store.path('explain', hexOf(sha256(identity)));
}

/** A step's record file in its build's folder, by the step's name. */
function recordFileName(stepName: string): string {
  return hexOf(sha256(stepName));
}

/** Beside a step's record, the files it selected (read only to explain a miss). */
const CONTENT_SUFFIX = '.content';

/**
 * The previous build's records, without their file lists: a cached rebuild compares keys only,
 * and parsing the list of a COPY of 20,000 files was ~20 ms of every rebuild. contentOf reads a
 * list when a miss is explained.
 */
export async function describeSteps(store: Store, identity: string): Promise<Map<string, StepRecord>> {
  const out = new Map<string, StepRecord>();
  const dir = dirFor(store, identity);
  let names: string[];
  // Synchronous reads: one small file per step, and a thread-pool round trip per call cost a
  // fully cached 50-step build ~30 ms of its start.
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (n.endsWith(CONTENT_SUFFIX)) continue;
    try {
      const rec = JSON.parse(readFileSync(join(dir, n), 'utf8')) as StepRecord;
      out.set(rec.name, rec);
    } catch {
      // A record being replaced right now by another build: skip it.
    }
  }
  return out;
}

/** The files an earlier record's step selected: kept in its record by older versions, else beside it. */
export function contentOf(store: Store, identity: string, rec: StepRecord): ContentEntry[] | undefined {
  if (rec.content || !rec.hasContent) return rec.content;
  try {
    return JSON.parse(readFileSync(join(dirFor(store, identity), recordFileName(rec.name) + CONTENT_SUFFIX), 'utf8')) as ContentEntry[];
  } catch {
    return undefined; // replaced or lost: the explanation says less
  }
}

/**
 * Writes the step's record with thread-pool calls: nothing in this build reads it, so the solver
 * does not wait for it before running the step (replacing the previous build's record may wait
 * on the disk), only before the build ends. Its file list goes beside it, written first.
 */
export async function recordStep(store: Store, identity: string, node: GraphNode, rec: StepRecord, content?: ContentEntry[]): Promise<void> {
  const dir = dirFor(store, identity);
  const file = join(dir, recordFileName(node.name));
  // Advisory: a record lost to a power cut only makes the next --explain say less (no fsync).
  if (content) await store.writeFileAtomic(file + CONTENT_SUFFIX, JSON.stringify(content), { durable: false, background: true });
  const head: StepRecord = { ...rec, ...(content ? { hasContent: true } : {}), at: Date.now() };
  await store.writeFileAtomic(file, JSON.stringify(head), { durable: false, background: true });
}

/**
 * After a build that succeeded, drops the records (and file lists) of steps it does not have: an
 * edited or deleted step's record would otherwise stay, one more file per edit, and --explain
 * compares with the previous build only. Advisory, like the records: a failure leaves them.
 */
export function pruneStepRecords(store: Store, identity: string, stepNames: Iterable<string>): void {
  const dir = dirFor(store, identity);
  const kept = new Set<string>();
  for (const name of stepNames) kept.add(recordFileName(name));
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return;
  }
  try {
    for (const f of files) {
      const record = f.endsWith(CONTENT_SUFFIX) ? f.slice(0, -CONTENT_SUFFIX.length) : f;
      if (!kept.has(record)) rmSync(join(dir, f), { force: true });
    }
  } catch {
    // left for the next build
  }
}

/** `COPY src/ /app`: the node name without its `[stage k/n]` prefix; `FROM ref` for a base image. */
export function stepLabel(node: GraphNode | undefined): string | undefined {
  if (!node) return undefined;
  if (node.op.kind === 'source.image') return `FROM ${node.name.replace(/^\[internal\] load /, '')}`;
  return node.name.replace(/^\[[^\]]*\]\s*/, '');
}

/** `[stage-1 2/7] WORKDIR /w` -> stage `stage-1`, step 2, text `WORKDIR /w`. */
function stepPlace(name: string): { stage: string; step: number; text: string } | undefined {
  const m = /^\[(.*?) *(\d+)\/\d+\]\s*(.*)$/s.exec(name);
  return m ? { stage: m[1]!, step: Number(m[2]), text: m[3]! } : undefined;
}

/**
 * The earlier build's record of the step now called `name`: the same name; else, as a line
 * added or removed above renumbers the steps, the same instruction in the same stage (the
 * nearest if it is there twice); else the step at the same place in the stage (an edited line).
 */
export function earlierRecord(previous: Map<string, StepRecord>, name: string, kind: string): StepRecord | undefined {
  const exact = previous.get(name);
  if (exact) return exact;
  const here = stepPlace(name);
  if (!here) return undefined;
  let sameText: { r: StepRecord; distance: number } | undefined;
  let samePlace: StepRecord | undefined;
  for (const r of previous.values()) {
    const there = stepPlace(r.name);
    if (!there || there.stage !== here.stage || r.op.kind !== kind) continue;
    if (there.text === here.text) {
      const distance = Math.abs(there.step - here.step);
      if (!sameText || distance < sameText.distance) sameText = { r, distance };
    } else if (there.step === here.step && (!samePlace || (r.at ?? 0) > (samePlace.at ?? 0))) samePlace = r;
  }
  return sameText?.r ?? samePlace;
}

/** Reasons a step missed the cache, or undefined when there is no earlier build to compare with. */
export function explainDifference(prev: StepRecord | undefined, cur: StepRecord, buildArgNames: Set<string>): string[] | undefined {
  if (!prev || prev.key === cur.key) return undefined;
  const reasons: string[] = [];
  const label = cur.name.replace(/^\[[^\]]*\]\s*/, '');
  // A parent that changed explains everything below it; say that first and only that.
  if (prev.inputKeys[0] !== cur.inputKeys[0]) {
    const image = cur.inputNames[0]?.replace(/^FROM /, '');
    if (prev.baseDigest && cur.baseDigest && prev.baseDigest !== cur.baseDigest && prev.inputNames[0] === cur.inputNames[0]) {
      const short = (d: Digest) => d.slice(0, 'sha256:'.length + 12);
      return [`${label}: base image ${image} changed ${short(prev.baseDigest)} -> ${short(cur.baseDigest)}`];
    }
    return [`${label}: parent step changed (${cur.inputNames[0] ?? 'base'})`];
  }
  for (let i = 1; i < cur.inputKeys.length; i++) {
    if (prev.inputKeys[i] !== cur.inputKeys[i]) reasons.push(`${label}: source ${cur.inputNames[i]} changed`);
  }
  if (canonicalJson(prev.op) !== canonicalJson(cur.op)) reasons.push(...opDifferences(label, prev.op, cur.op, buildArgNames));
  if (canonicalJson(prev.contentKeys) !== canonicalJson(cur.contentKeys)) {
    const moved = refMoves(prev.content, cur.content);
    for (const m of moved) reasons.push(`${label}: ${m}`);
    const files = contentDifferences(prev.content?.filter((e) => e.type !== GIT_REF), cur.content?.filter((e) => e.type !== GIT_REF));
    if (moved.length && !files) return reasons;
    reasons.push(files ? `${label}: ${files}` : `${label}: source files changed`);
  }
  if (reasons.length === 0) reasons.push(`${label}: cache key changed (kiln version or cache format)`);
  return reasons;
}

function opDifferences(label: string, a: ExecOp | FileOp, b: ExecOp | FileOp, buildArgNames: Set<string>): string[] {
  if (a.kind === 'file' && b.kind === 'file') return [`${label}: ${fileOpDifference(a, b)}`];
  if (a.kind !== 'exec' || b.kind !== 'exec') return [`${label}: instruction changed`];
  const out: string[] = [];
  const envA = envMap(a.env);
  const envB = envMap(b.env);
  for (const k of new Set([...envA.keys(), ...envB.keys()])) {
    const va = envA.get(k);
    const vb = envB.get(k);
    if (va === vb) continue;
    const what = buildArgNames.has(k) ? 'build arg' : 'environment variable';
    if (va === undefined) out.push(`${label}: ${what} ${k} added (${vb})`);
    else if (vb === undefined) out.push(`${label}: ${what} ${k} removed (was ${va})`);
    else out.push(`${label}: ${what} ${k} changed ${va} -> ${vb}`);
  }
  if (canonicalJson(a.args) !== canonicalJson(b.args)) out.push(`${label}: command changed`);
  if (a.cwd !== b.cwd) out.push(`${label}: working directory changed ${a.cwd} -> ${b.cwd}`);
  if (a.user !== b.user) out.push(`${label}: user changed ${a.user || 'root'} -> ${b.user || 'root'}`);
  if (a.network !== b.network) out.push(`${label}: network changed ${a.network} -> ${b.network}`);
  if (a.security !== b.security) out.push(`${label}: security changed ${a.security} -> ${b.security}`);
  if (canonicalJson(a.mounts) !== canonicalJson(b.mounts)) out.push(...mountDifferences(a.mounts, b.mounts).map((d) => `${label}: ${d}`));
  if (canonicalJson(a.files) !== canonicalJson(b.files)) out.push(`${label}: heredoc script changed`);
  const hosts = (op: ExecOp) => (op.extraHosts ?? []).map((h) => `${h.host}:${h.ip}`).join(' ') || 'none';
  if (hosts(a) !== hosts(b)) out.push(`${label}: --add-host changed ${hosts(a)} -> ${hosts(b)}`);
  const hostname = (op: ExecOp) => op.hostname ?? DEFAULT_HOSTNAME;
  if (hostname(a) !== hostname(b)) out.push(`${label}: BUILDKIT_SANDBOX_HOSTNAME changed ${hostname(a)} -> ${hostname(b)}`);
  return out;
}

/** A COPY, ADD or WORKDIR whose only change is the owner (its --chown, or WORKDIR's USER) says so. */
function fileOpDifference(a: FileOp, b: FileOp): string {
  const owner = (c: { chown?: { user: string; group?: string } }) => (c.chown ? `${c.chown.user || 'root'}${c.chown.group ? `:${c.chown.group}` : ''}` : 'root');
  const withoutOwner = (op: FileOp) => canonicalJson(op.actions.map(({ chown: _chown, ...rest }) => rest));
  if (a.actions.length !== b.actions.length || withoutOwner(a) !== withoutOwner(b)) return 'instruction changed';
  const changed = a.actions.map((x, i) => [owner(x), owner(b.actions[i]!)] as const).filter(([x, y]) => x !== y);
  return changed.length ? `owner changed ${changed.map(([x, y]) => `${x} -> ${y}`).join(', ')}` : 'instruction changed';
}

/** `cache mount /c: id /c -> ns//c`, `bind mount /src added`: what changed in a RUN's --mount list. */
function mountDifferences(a: RunMount[], b: RunMount[]): string[] {
  const byTarget = (ms: RunMount[]) => new Map(ms.map((m) => [m.target, m]));
  const ma = byTarget(a);
  const mb = byTarget(b);
  const out: string[] = [];
  for (const [target, m] of ma) if (!mb.has(target)) out.push(`${m.type} mount ${target} removed`);
  for (const [target, m] of mb) {
    const old = ma.get(target);
    if (!old) out.push(`${m.type} mount ${target} added`);
    else if (old.type !== m.type) out.push(`mount ${target} changed ${old.type} -> ${m.type}`);
    else {
      const fields = Object.keys({ ...old, ...m }).sort() as Array<keyof RunMount>;
      for (const f of fields) {
        const [va, vb] = [old[f], m[f]].map((v) => (v === undefined ? 'none' : typeof v === 'object' ? canonicalJson(v) : String(v)));
        if (va !== vb) out.push(`${m.type} mount ${target}: ${String(f)} ${va} -> ${vb}`);
      }
    }
  }
  return out.length ? out : ['mounts changed'];
}

function envMap(env: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of env) {
    const i = e.indexOf('=');
    m.set(i < 0 ? e : e.slice(0, i), i < 0 ? '' : e.slice(i + 1));
  }
  return m;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8);
}

/** `git ref URL#main moved 1a2b3c4d5e6f -> 7a8b9c0d1e2f`, for each ref whose commit changed. */
function refMoves(prev?: ContentEntry[], cur?: ContentEntry[]): string[] {
  const before = new Map((prev ?? []).filter((e) => e.type === GIT_REF).map((e) => [e.path, e.digest]));
  const out: string[] = [];
  for (const e of cur ?? []) {
    const was = before.get(e.path);
    if (e.type === GIT_REF && was !== undefined && was !== e.digest) out.push(`git ref ${e.path} moved ${was.slice(0, 12)} -> ${e.digest!.slice(0, 12)}`);
  }
  return out;
}

/** `3 files changed: a (content), b (mode 644 -> 755), c (added)`. */
export function contentDifferences(prev?: ContentEntry[], cur?: ContentEntry[]): string | undefined {
  if (!prev || !cur) return undefined;
  const before = new Map(prev.map((e) => [e.path, e]));
  const after = new Map(cur.map((e) => [e.path, e]));
  const changes: string[] = [];
  for (const [p, e] of after) {
    const o = before.get(p);
    if (!o) {
      changes.push(`${p} (added)`);
      continue;
    }
    const parts: string[] = [];
    if (o.type !== e.type) parts.push(`type ${o.type} -> ${e.type}`);
    else if (o.digest !== e.digest) parts.push('content');
    if (octal(o.mode) !== octal(e.mode)) parts.push(`mode ${octal(o.mode)} -> ${octal(e.mode)}`);
    if (o.uid !== e.uid || o.gid !== e.gid) parts.push(`owner ${o.uid}:${o.gid} -> ${e.uid}:${e.gid}`);
    if (o.linkTarget !== e.linkTarget) parts.push(`link ${o.linkTarget ?? ''} -> ${e.linkTarget ?? ''}`);
    if (parts.length) changes.push(`${p} (${parts.join(', ')})`);
  }
  for (const p of before.keys()) if (!after.has(p)) changes.push(`${p} (removed)`);
  if (changes.length === 0) return undefined;
  changes.sort();
  const shown = changes.slice(0, 20);
  const more = changes.length > shown.length ? `, and ${changes.length - shown.length} more` : '';
  return `${changes.length} file${changes.length === 1 ? '' : 's'} changed: ${shown.join(', ')}${more}`;
}
