// The solver: walks the build graph from the target back to its sources, runs each op at
// most once (not at all when the store holds its key), and runs independent ops side by side.

import pLimit from 'p-limit';
import type { BuildGraph, Digest, ExecOp, FileOp, GraphNode, Op } from '../graph/ops.js';
import { cacheKey } from '../graph/cachekey.js';
import type { HistoryEntry } from '../image/types.js';
import type { Store } from '../store/store.js';
import type { ResolvedInput, StepOutput, WorkerContext } from '../worker/types.js';
import { KilnError, errorMessage } from '../util/errors.js';
import { hexOf, sha256 } from '../util/digest.js';
import type { EventSink, StepState } from './events.js';
import { withKeyLock, sweepStaleLocks } from './keylock.js';
import { describeSteps, pruneStepRecords, recordStep, explainDifference, earlierRecord, contentOf, stepLabel, type ContentLister, type StepRecord } from './explain.js';

/** What the solver needs from the stations below it; the CLI wires the real ones. */
export interface Workers {
  /** Layers (snapshot ids, bottom to top) and history of a base image. */
  loadImage(digest: Digest): Promise<{ layers: string[]; history: HistoryEntry[] }>;
  runExec(op: ExecOp, inputs: ResolvedInput[], ctx: WorkerContext, snapshotId: string): Promise<StepOutput>;
  runFile(op: FileOp, inputs: ResolvedInput[], ctx: WorkerContext, snapshotId: string): Promise<StepOutput>;
  fileContentKey(op: FileOp, inputs: ResolvedInput[], ctx: WorkerContext): Promise<Digest>;
  /** The files behind fileContentKey, so --explain can name what changed. */
  listContent?: ContentLister;
  /** Makes sure these snapshots are on disk (a cache imported from elsewhere brings them lazily). */
  ensureLayers?(snapshotIds: string[]): Promise<void>;
}

/** A build cache from elsewhere (--cache-from), asked after the local store misses. */
export interface RemoteCache {
  /** The step's snapshot id (possibly not on disk yet: see Workers.ensureLayers), or undefined. */
  lookup(key: Digest): Promise<{ snapshot: string | null } | undefined>;
  /** The real key behind an alias key (see aliasKeyOf), if this cache knows it. */
  alias(key: Digest): Promise<Digest | undefined>;
}

export type WorkerSettings = Omit<WorkerContext, 'store' | 'signal' | 'onOutput'>;

export interface SolveOptions {
  store: Store;
  workers: Workers;
  /** Host folders of the graph's context sources, by their name (`context` is the main one). */
  contextDirs: Map<string, string>;
  settings: WorkerSettings;
  jobs: number;
  remoteCache?: RemoteCache;
  noCache: boolean;
  /** Stage indexes whose steps ignore the cache (--no-cache-filter). */
  noCacheStages: Set<number>;
  /** Identifies "the same Dockerfile" across builds, for --explain. */
  buildIdentity: string;
  explain: boolean;
  emit: EventSink;
  signal: AbortSignal;
}

export interface NodeResult {
  key: Digest;
  /** The filesystem after this node: snapshot ids, bottom to top. */
  layers: string[];
  /** This node's own layer (null: it changed nothing, or it is a source). */
  own: string | null;
  cached: boolean;
  /** The key this step can also be found by without reading its source files (see aliasKeyOf). */
  alias?: Digest;
}

export interface StageImage {
  layers: string[];
  history: HistoryEntry[];
}

export interface SolveResult {
  nodes: Map<string, NodeResult>;
  /** Per needed stage (by Dockerfile index): its layers and full history, base included. */
  stages: Map<number, StageImage>;
  /** Node ids that ran (not cached), in completion order. */
  ran: string[];
}

export async function solve(graph: BuildGraph, opts: SolveOptions): Promise<SolveResult> {
  const started = Date.now();
  // One failed step stops the others (as Ctrl-C does): their results could not be used anyway.
  const cancel = new AbortController();
  const onAbort = () => cancel.abort(opts.signal.reason);
  if (opts.signal.aborted) onAbort();
  else opts.signal.addEventListener('abort', onAbort, { once: true });
  const limit = pLimit(Math.max(1, opts.jobs));
  const results = new Map<string, Promise<NodeResult>>();
  const byKey = new Map<Digest, Promise<NodeResult>>();
  const done = new Map<string, NodeResult>();
  const ran: string[] = [];
  const seqOf = numberNodes(graph);
  const locksDir = opts.store.path('locks');
  await sweepStaleLocks(locksDir);
  // Read on every build: a step is recorded again only when its key moved since (cheap no-change rebuilds).
  const previous = await describeSteps(opts.store, opts.buildIdentity);

  const emitStep = (node: GraphNode, state: StepState, extra: { durationMs?: number; error?: string } = {}) => {
    opts.emit({ type: 'step', id: node.id, seq: seqOf.get(node.id) ?? 0, name: node.name, state, at: Date.now() - started, ...extra });
  };

  const inputOf = (node: GraphNode, r: NodeResult, idx: number): ResolvedInput => {
    const inNode = graph.nodes[node.inputs[idx]!]!;
    if (inNode.op.kind === 'source.context') {
      const dir = opts.contextDirs.get(inNode.op.name);
      if (dir === undefined) throw new Error(`no folder for the build context ${inNode.op.name}`);
      return { kind: 'context', dir, excludePatterns: inNode.op.excludePatterns };
    }
    return { kind: 'state', layers: r.layers };
  };

  const workerCtx = (node: GraphNode): WorkerContext => ({
    ...opts.settings,
    store: opts.store,
    reuseEarlierFiles: usesCache(node),
    stepMemo: new WeakMap(),
    signal: cancel.signal,
    onOutput: (chunk, stream) =>
      opts.emit({ type: 'log', id: node.id, seq: seqOf.get(node.id) ?? 0, stream, data: chunk.toString('utf8') }),
  });

  const resolve = (id: string): Promise<NodeResult> => {
    let p = results.get(id);
    if (!p) {
      p = resolveNode(id);
      results.set(id, p);
    }
    return p;
  };

  const resolveNode = async (id: string): Promise<NodeResult> => {
    const node = graph.nodes[id];
    if (!node) throw new Error(`graph has no node ${id}`);
    const inputResults = await Promise.all(node.inputs.map(resolve));
    cancel.signal.throwIfAborted();
    const inputs = inputResults.map((r, i) => inputOf(node, r, i));
    const op = node.op;
    if (op.kind === 'source.scratch') return { key: sha256('scratch'), layers: [], own: null, cached: true };
    if (op.kind === 'source.context') return { key: cacheKey(op, []), layers: [], own: null, cached: true };
    if (op.kind === 'source.image') {
      emitStep(node, 'running');
      const t0 = Date.now();
      const img = await limit(() => opts.workers.loadImage(op.digest));
      emitStep(node, 'done', { durationMs: Date.now() - t0 });
      imageHistory.set(id, img.history);
      return { key: cacheKey(op, []), layers: img.layers, own: null, cached: true };
    }
    const ctx = workerCtx(node);
    // COPY stamps files with SOURCE_DATE_EPOCH: another epoch is another result.
    const stamp = op.kind === 'file' ? [sha256(`source-date-epoch:${opts.settings.sourceDateEpoch ?? 0}`)] : [];
    const alias = aliasKeyOf(op, inputs, inputResults.map((r) => r.key), stamp);
    if (alias && usesCache(node)) {
      const hit = await aliasHit(alias);
      if (hit) {
        // prune removes the least recently used first: a hit is a use.
        if (hit.snapshot) await opts.store.markSnapshotUsed(hit.snapshot);
        emitStep(node, 'cached');
        const r: NodeResult = { key: hit.key, layers: hit.snapshot ? [...inputResults[0]!.layers, hit.snapshot] : inputResults[0]!.layers, own: hit.snapshot, cached: true, alias };
        done.set(id, r);
        return r;
      }
    }
    let contentKeys: Digest[];
    try {
      contentKeys = await contentKeysOf(op, inputs, ctx, opts.workers);
    } catch (err) {
      // A missing COPY source surfaces here, before the step starts: name its line too.
      emitStep(node, 'error', { error: errorMessage(err) });
      throw withLocation(node, err);
    }
    const key = cacheKey(op, keyedInputs(op, inputResults.map((r) => r.key), contentKeys), [...contentKeys, ...stamp]);
    // Identical ops in one build (same key) run once; the others show as cached.
    let shared = byKey.get(key);
    const duplicate = shared !== undefined;
    if (!shared) {
      shared = runOrReuse(node, op, key, inputs, inputResults, ctx, contentKeys);
      byKey.set(key, shared);
    }
    let r = await shared;
    if (duplicate) emitStep(node, 'cached');
    if (alias && r.key === key) {
      // Next time this step is found without reading its sources (and so is a cache imported from here).
      await opts.store.putCacheRecord({ key: alias, snapshot: r.own, resultKey: key, createdAt: new Date().toISOString() });
      r = { ...r, alias };
    }
    done.set(id, r);
    return r;
  };

  const usesCache = (node: GraphNode) => !opts.noCache && !(node.stage !== undefined && opts.noCacheStages.has(node.stage));

  const aliasHit = async (alias: Digest): Promise<{ key: Digest; snapshot: string | null } | undefined> => {
    const local = await opts.store.getCacheRecord(alias);
    if (local?.resultKey) return { key: local.resultKey, snapshot: local.snapshot };
    const remoteKey = await opts.remoteCache?.alias(alias);
    if (!remoteKey) return undefined;
    const rec = (await opts.store.getCacheRecord(remoteKey)) ?? (await opts.remoteCache?.lookup(remoteKey));
    return rec ? { key: remoteKey, snapshot: rec.snapshot } : undefined;
  };

  const runOrReuse = async (
    node: GraphNode,
    op: ExecOp | FileOp,
    key: Digest,
    inputs: ResolvedInput[],
    inputResults: NodeResult[],
    ctx: WorkerContext,
    contentKeys: Digest[],
  ): Promise<NodeResult> => {
    const base = inputResults[0]?.layers ?? [];
    const useCache = usesCache(node);
    const stepRecord: StepRecord = {
      name: node.name,
      instruction: node.instruction,
      key,
      op,
      inputKeys: inputResults.map((r) => r.key),
      inputNames: node.inputs.map((i) => stepLabel(graph.nodes[i]) ?? i),
      contentKeys,
    };
    const parentOp = graph.nodes[node.inputs[0] ?? '']?.op;
    if (parentOp?.kind === 'source.image') stepRecord.baseDigest = parentOp.digest;
    const finish = (own: string | null, cached: boolean): NodeResult => ({
      // A step re-run despite its cache record may give a different result: what is built on
      // it must not reuse results built on the old one (content-keyed COPYs still compare files).
      key: cached || useCache ? key : sha256(`${key}\0${own ?? 'empty'}`),
      layers: own ? [...base, own] : base,
      own,
      cached,
    });
    const cacheHit = async (): Promise<NodeResult | undefined> => {
      const rec = await opts.store.getCacheRecord(key);
      const hit = rec ?? (await opts.remoteCache?.lookup(key));
      if (!hit) return undefined;
      // prune removes the least recently used first: a hit is a use.
      if (rec?.snapshot) await opts.store.markSnapshotUsed(rec.snapshot);
      emitStep(node, 'cached');
      if (previous.get(node.name)?.key !== key) await record(node, stepRecord, op, inputs, ctx);
      return finish(hit.snapshot, true);
    };
    emitStep(node, 'waiting');
    // A hit needs neither a job slot nor the key's lock: records appear whole (by rename).
    const early = useCache ? await cacheHit() : undefined;
    if (early) return early;
    return limit(() =>
      withKeyLock(locksDir, hexOf(key), cancel.signal, async () => {
        // Another build may have made it while we waited for the lock.
        const hit = useCache ? await cacheHit() : undefined;
        if (hit) return hit;
        const content = await record(node, stepRecord, op, inputs, ctx);
        if (opts.explain) {
          const earlier = earlierRecord(previous, node.name, op.kind);
          const withContent = earlier && { ...earlier, content: contentOf(opts.store, opts.buildIdentity, earlier) };
          // A step the flags keep from the cache ran for that reason first: say which flag. The
          // same key as before, yet no cache hit: the earlier build never finished the step (its
          // record is written before it runs), or its result was pruned since.
          const reasons = !useCache && earlier
            ? [`${stepLabel(node)}: ${opts.noCache ? '--no-cache' : `--no-cache-filter ${graph.stages.find((st) => st.index === node.stage)?.name ?? node.stage}`}`]
            : earlier?.key === key
              ? [`${stepLabel(node)}: unchanged, but no result is cached (an earlier build did not finish it, or it was pruned)`]
              : explainDifference(withContent, { ...stepRecord, content }, argNames(node));
          if (reasons) opts.emit({ type: 'explain', id: node.id, seq: seqOf.get(node.id) ?? 0, name: node.name, reasons });
        }
        await opts.workers.ensureLayers?.(inputs.flatMap((i) => (i.kind === 'state' ? i.layers : [])));
        emitStep(node, 'running');
        const t0 = Date.now();
        // A fresh id when the cache is bypassed: the step may give a different result this time.
        const snapshotId = useCache ? hexOf(key) : `${hexOf(key)}-${Date.now().toString(36)}`;
        let out: StepOutput;
        try {
          out = op.kind === 'exec'
            ? await opts.workers.runExec(op, inputs, ctx, snapshotId)
            : await opts.workers.runFile(op, inputs, ctx, snapshotId);
        } catch (err) {
          if (cancel.signal.aborted) emitStep(node, 'cancelled', { durationMs: Date.now() - t0 });
          else emitStep(node, 'error', { durationMs: Date.now() - t0, error: errorMessage(err) });
          throw withLocation(node, err);
        }
        await opts.store.putCacheRecord({ key, snapshot: out.snapshot, createdAt: new Date().toISOString() });
        ran.push(node.id);
        emitStep(node, 'done', { durationMs: Date.now() - t0 });
        return finish(out.snapshot, false);
      }),
    );
  };

  // Records what this step's key was made of, for the next build's --explain.
  // The writes are not waited for here (nothing in this build reads them), only before the build ends.
  const recordWrites: Promise<void>[] = [];
  const record = async (node: GraphNode, rec: StepRecord, op: ExecOp | FileOp, inputs: ResolvedInput[], ctx: WorkerContext) => {
    const lister = opts.workers.listContent;
    const content = op.kind === 'file' && lister && rec.contentKeys.length > 0 ? await lister(op, inputs, ctx) : undefined;
    const write = recordStep(opts.store, opts.buildIdentity, node, rec, content);
    write.catch(() => {}); // reported when the build waits for it
    recordWrites.push(write);
    return content;
  };

  // Variables a RUN sees that the image does not keep are build args.
  const argNames = (node: GraphNode): Set<string> => {
    const stage = graph.stages.find((s) => s.index === node.stage);
    const kept = new Set((stage?.config.Env ?? []).map((e) => e.slice(0, e.indexOf('=') >>> 0)));
    const op = node.op;
    const names = op.kind === 'exec' ? op.env.map((e) => e.slice(0, e.indexOf('=') >>> 0)) : [];
    return new Set(names.filter((n) => !kept.has(n)));
  };

  const imageHistory = new Map<string, HistoryEntry[]>();
  const stages = new Map<number, StageImage>();
  const stageImage = async (index: number): Promise<StageImage> => {
    const cachedImage = stages.get(index);
    if (cachedImage) return cachedImage;
    const stage = graph.stages.find((s) => s.index === index);
    if (!stage) throw new Error(`stage ${index} is not in the graph`);
    const baseNode = graph.nodes[stage.base]!;
    let history: HistoryEntry[] = [];
    if (stage.baseStage !== undefined) history = [...(await stageImage(stage.baseStage)).history];
    else if (baseNode.op.kind === 'source.image') history = baseHistory(imageHistory.get(baseNode.id) ?? [], (await resolve(stage.base)).layers.length);
    const baseResult = await resolve(stage.base);
    const layers = [...baseResult.layers];
    for (const h of stage.history) {
      const own = h.nodeId ? (await resolve(h.nodeId)).own : null;
      if (own) layers.push(own);
      history.push({ created_by: h.createdBy, ...(h.comment ? { comment: h.comment } : {}), ...(own ? {} : { empty_layer: true }) });
    }
    const img = { layers, history };
    stages.set(index, img);
    return img;
  };

  try {
    const target = graph.stages.find((s) => s.index === graph.target);
    if (!target) throw new Error('the graph has no target stage');
    // Every needed stage is solved concurrently; the target's image needs them all anyway.
    await Promise.all(graph.stages.map((s) => resolve(s.root)));
    for (const s of graph.stages) await stageImage(s.index);
    await Promise.all(recordWrites);
    pruneStepRecords(opts.store, opts.buildIdentity, Object.values(graph.nodes).filter((n) => n.op.kind === 'exec' || n.op.kind === 'file').map((n) => n.name));
  } catch (err) {
    // Stop the steps still running, and let them clean up before reporting, so nothing is left half-made.
    if (!cancel.signal.aborted) cancel.abort(err);
    await Promise.allSettled(results.values());
    await Promise.allSettled(recordWrites);
    throw err;
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
  }
  const nodes = new Map<string, NodeResult>();
  for (const [id, p] of results) nodes.set(id, await p);
  for (const [id, r] of done) nodes.set(id, r);
  return { nodes, stages, ran };
}

/**
 * A COPY's source input counts by the files it selects (its content key), not by how that
 * state was made: a stage rebuilt to the same files leaves the COPY --from cached.
 */
function keyedInputs(op: Op, inputKeys: Digest[], contentKeys: Digest[]): Digest[] {
  if (op.kind !== 'file' || contentKeys.length === 0) return inputKeys;
  return inputKeys.map((k, i) => {
    if (i === 0) return k;
    return op.actions.some((a) => a.action === 'copy' && a.from === i) ? BY_CONTENT : k;
  });
}

const BY_CONTENT = sha256('input keyed by the content it selects');

async function contentKeysOf(op: Op, inputs: ResolvedInput[], ctx: WorkerContext, workers: Workers): Promise<Digest[]> {
  if (op.kind === 'file') {
    const readsFiles = op.actions.some((a) => a.action === 'copy' || a.action === 'download' || a.action === 'git');
    return readsFiles ? [await workers.fileContentKey(op, inputs, ctx)] : [];
  }
  if (op.kind === 'exec') {
    // A bind mount of the context reads files that no input key covers.
    const keys: Digest[] = [];
    for (const m of op.mounts) {
      if ((m.type === 'bind' || m.type === 'cache') && m.from !== undefined && inputs[m.from]?.kind === 'context') {
        const probe: FileOp = {
          kind: 'file',
          actions: [{ action: 'copy', from: m.from, src: [m.source || '/'], dest: '/', link: false, parents: false, exclude: [], add: false }],
        };
        keys.push(await workers.fileContentKey(probe, inputs, ctx));
      }
    }
    return keys;
  }
  return [];
}

function withLocation(node: GraphNode, err: unknown): Error {
  if (err instanceof KilnError && err.location) return err;
  const where = node.location ? { file: node.location.file, line: node.location.line, column: node.location.column } : undefined;
  const text = `${node.name}: ${errorMessage(err)}`;
  return new KilnError(text, { location: where, cause: err, exitCode: err instanceof KilnError ? err.exitCode : 1 });
}

/** BuildKit-like numbering: stages in order, their nodes in insertion order. */
function numberNodes(graph: BuildGraph): Map<string, number> {
  const seq = new Map<string, number>();
  let n = 0;
  for (const id of Object.keys(graph.nodes)) {
    const op = graph.nodes[id]!.op;
    if (op.kind === 'source.context' || op.kind === 'source.scratch') continue;
    seq.set(id, ++n);
  }
  return seq;
}

/** A base image's history, or one plain entry per layer when it has none that fits (it is optional in OCI). */
function baseHistory(history: HistoryEntry[], layers: number): HistoryEntry[] {
  const withLayers = history.filter((h) => !h.empty_layer).length;
  return withLayers === layers ? [...history] : Array.from({ length: layers }, () => ({}));
}

const ALIAS = sha256('alias: keyed by the source states, not by the files they hold');

/**
 * A COPY whose sources are all other stages or images can also be keyed by those states' keys,
 * without reading a file: a rebuild (or a fresh store with an imported cache) then finds it
 * without unpacking or hashing the source stages. Its real key stays the content key.
 */
function aliasKeyOf(op: Op, inputs: ResolvedInput[], inputKeys: Digest[], stamp: Digest[]): Digest | undefined {
  if (op.kind !== 'file') return undefined;
  let fromStates = false;
  for (const a of op.actions) {
    if (a.action === 'download' || a.action === 'git') return undefined;
    if (a.action !== 'copy') continue;
    if (a.from === 0 || inputs[a.from]?.kind !== 'state') return undefined;
    fromStates = true;
  }
  return fromStates ? cacheKey(op, inputKeys, [...stamp, ALIAS]) : undefined;
}
