// --cache-from / --cache-to: the build cache shared through a registry (or a folder), so a
// fresh CI runner starts warm. Imported records are looked up when the local store misses,
// and their layers are fetched only when something needs the files: a step that does run on
// top of them, or the final image.

import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Store } from '../store/store.js';
import { removeTree } from '../store/store.js';
import type { BuildGraph, Digest } from '../graph/ops.js';
import type { RemoteCache, SolveResult } from '../solver/solve.js';
import { ensureLayer, ensureLayers } from '../image/layers.js';
import { layerSnapshotId, materializeLayer } from '../image/load.js';
import { MediaType } from '../image/types.js';
import {
  openLocalCache,
  openRegistryCache,
  pushCache,
  writeLocalCache,
  inlineCacheValue,
  INLINE_CACHE_FIELD,
  type CacheContents,
  type CacheLayer,
  type CacheMountOut,
  type CacheRecordOut,
  type CacheSource,
} from '../registry/cache-artifact.js';
import { cacheMountPath } from '../worker/exec/mounts.js';
import { createLayerTar } from '../util/tar/write.js';
import { extractTar } from '../util/tar/extract.js';
import { compressor, openDecompressed } from '../util/tar/filter.js';
import { hashingPassThrough } from '../util/tar/hash.js';
import { parseKeyValues } from './args.js';
import { KilnError } from '../util/errors.js';
import { pathExists, renameIntoPlace } from '../util/fs.js';

export interface CacheTransferOptions {
  insecureRegistries: string[];
  signal: AbortSignal;
}

export interface CacheSpec {
  type: 'registry' | 'local' | 'inline';
  /** registry: the reference; local: the folder. */
  location?: string;
  /** min: the final image's steps; max: every step, intermediate stages too. */
  mode: 'min' | 'max';
  /** Also carry RUN --mount=type=cache folders. */
  cacheMounts: boolean;
  tag?: string;
}

export function parseCacheSpec(text: string, flag: '--cache-to' | '--cache-from'): CacheSpec {
  const kv = parseKeyValues(text.includes('=') ? text : `type=registry,ref=${text}`, flag);
  const type = kv.get('type') ?? 'registry';
  const known: Record<string, string[]> = {
    registry: ['type', 'ref', 'mode', 'cache-mounts', 'oci-mediatypes', 'image-manifest', 'ignore-error'],
    local: ['type', 'dest', 'src', 'mode', 'cache-mounts', 'tag', 'ignore-error'],
    inline: ['type', 'mode'],
  };
  const keys = known[type];
  if (!keys) {
    // BuildKit's cloud backends: say what to use instead of leaving the user to guess.
    const service = ({ gha: 'the GitHub Actions cache service', s3: 'S3', azblob: 'Azure Blob Storage' } as Record<string, string>)[type];
    const instead = service ? `: kiln does not reach ${service}; use type=registry, or type=local with a folder your CI keeps (e.g. actions/cache)` : ' (expected registry, local or inline)';
    throw new KilnError(`${flag}: unknown cache type "${type}"${instead}`, { exitCode: 2 });
  }
  for (const k of kv.keys()) if (!keys.includes(k)) throw new KilnError(`${flag}: type=${type} has no option "${k}"`, { exitCode: 2 });
  const mode = kv.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new KilnError(`${flag}: mode must be min or max, got "${mode}"`, { exitCode: 2 });
  const mounts = kv.get('cache-mounts') ?? 'false';
  if (mounts !== 'true' && mounts !== 'false') throw new KilnError(`${flag}: cache-mounts must be true or false`, { exitCode: 2 });
  const location = type === 'registry' ? kv.get('ref') : type === 'local' ? kv.get(flag === '--cache-to' ? 'dest' : 'src') : undefined;
  if (type !== 'inline' && !location) {
    const need = type === 'registry' ? 'ref=' : flag === '--cache-to' ? 'dest=' : 'src=';
    throw new KilnError(`${flag}: type=${type} needs ${need}`, { exitCode: 2 });
  }
  if (type === 'inline' && flag === '--cache-from') {
    throw new KilnError('--cache-from: an inline cache is read from its image: use type=registry,ref=IMAGE', { exitCode: 2 });
  }
  return { type: type as CacheSpec['type'], location, mode, cacheMounts: mounts === 'true', tag: kv.get('tag') };
}

interface Pending {
  source: CacheSource;
  layer: CacheLayer;
  keys: Digest[];
}

/** The imported caches of one build: the solver's RemoteCache, and the lazy layer fetcher. */
export class CacheImports implements RemoteCache {
  private readonly pending = new Map<string, Pending>();
  private readonly fetching = new Map<string, Promise<void>>();

  constructor(
    private readonly store: Store,
    readonly sources: CacheSource[],
  ) {}

  async lookup(key: Digest): Promise<{ snapshot: string | null } | undefined> {
    for (const source of this.sources) {
      if (!source.records.has(key)) continue;
      const layer = source.records.get(key)!;
      if (layer === null) {
        await this.store.putCacheRecord({ key, snapshot: null, createdAt: new Date().toISOString() });
        return { snapshot: null };
      }
      const id = layerSnapshotId(layer.diffId);
      if (await this.store.getSnapshot(id)) {
        await this.store.putCacheRecord({ key, snapshot: id, createdAt: new Date().toISOString() });
      } else {
        const p = this.pending.get(id);
        if (p) p.keys.push(key);
        else this.pending.set(id, { source, layer, keys: [key] });
      }
      return { snapshot: id };
    }
    return undefined;
  }

  async alias(key: Digest): Promise<Digest | undefined> {
    for (const source of this.sources) {
      const real = source.aliases.get(key);
      if (real) return real;
    }
    return undefined;
  }

  /** Fetches and unpacks the imported layers among `ids` that are not on disk yet. */
  async ensureLayers(ids: string[]): Promise<void> {
    await Promise.all(ids.map((id) => this.ensure(id)));
  }

  private ensure(id: string): Promise<void> {
    const p = this.pending.get(id);
    if (!p) return Promise.resolve();
    let f = this.fetching.get(id);
    if (!f) {
      f = (async () => {
        await p.source.fetchLayer(p.layer);
        await materializeLayer(this.store, p.layer.diffId, { mediaType: p.layer.mediaType, digest: p.layer.digest, size: p.layer.size });
        // Now a local hit for later builds too.
        for (const key of p.keys) await this.store.putCacheRecord({ key, snapshot: id, createdAt: new Date().toISOString() });
        this.pending.delete(id);
      })();
      this.fetching.set(id, f);
    }
    return f;
  }

  /** cache-mounts=true: fills RUN --mount=type=cache folders this store does not have yet. */
  async restoreMounts(): Promise<void> {
    for (const source of this.sources) {
      for (const m of source.mounts) {
        const target = cacheMountPath(this.store, m.id);
        if (await pathExists(target)) continue;
        await source.fetchLayer(m.layer);
        const staging = await this.store.tempDir('cache-mount');
        try {
          const dir = join(staging, 'fs');
          await mkdir(dir);
          await extractTar(await openDecompressed(this.store.blobStream(m.layer.digest)), dir, { whiteouts: 'apply', label: `cache mount ${m.id}` });
          await mkdir(join(target, '..'), { recursive: true });
          await renameIntoPlace(dir, target); // false: another build restored it first
        } finally {
          await removeTree(staging);
        }
      }
    }
  }
}

export async function openCacheImports(store: Store, specs: CacheSpec[], opts: CacheTransferOptions): Promise<CacheImports | undefined> {
  if (specs.length === 0) return undefined;
  const sources: CacheSource[] = [];
  for (const spec of specs) {
    const source =
      spec.type === 'registry'
        ? await openRegistryCache(store, spec.location!, { insecureRegistries: opts.insecureRegistries, signal: opts.signal })
        : await openLocalCache(store, spec.location!, spec.tag);
    // A cache that does not exist yet is the first build of a pipeline, not an error (as BuildKit).
    if (source) sources.push(source);
  }
  const imports = new CacheImports(store, sources);
  await imports.restoreMounts();
  return imports;
}

export interface CacheExportContext {
  graph: BuildGraph;
  result: SolveResult;
  /** The cache-mount ids the build's RUN steps use. */
  mountIds: string[];
}

/** The records a cache export carries: the target's stages (min) or every step (max). */
export async function cacheRecords(store: Store, ctx: CacheExportContext, mode: 'min' | 'max'): Promise<CacheRecordOut[]> {
  const wanted = mode === 'max' ? undefined : targetChain(ctx.graph);
  const out = new Map<Digest, CacheRecordOut>();
  for (const [id, r] of ctx.result.nodes) {
    const node = ctx.graph.nodes[id];
    if (!node || (node.op.kind !== 'exec' && node.op.kind !== 'file')) continue;
    if (wanted && (node.stage === undefined || !wanted.has(node.stage))) continue;
    if (out.has(r.key)) continue;
    out.set(r.key, { key: r.key, layer: r.own ? await layerOf(store, r.own) : null });
  }
  return [...out.values()];
}

function cacheAliases(ctx: CacheExportContext): { key: Digest; resultKey: Digest }[] {
  const out = new Map<Digest, Digest>();
  for (const r of ctx.result.nodes.values()) if (r.alias) out.set(r.alias, r.key);
  return [...out].map(([key, resultKey]) => ({ key, resultKey }));
}

async function layerOf(store: Store, snapshotId: string): Promise<CacheLayer | null> {
  const l = await ensureLayer(store, snapshotId, 'gzip');
  if (l.empty) return null;
  return { digest: l.descriptor.digest as Digest, size: l.descriptor.size, mediaType: l.descriptor.mediaType, diffId: l.diffId };
}

/** Stage indexes whose steps end up in the target image: the target and the stages it is built FROM. */
function targetChain(graph: BuildGraph): Set<number> {
  const chain = new Set<number>();
  let index: number | undefined = graph.target;
  while (index !== undefined && !chain.has(index)) {
    chain.add(index);
    const stage = graph.stages.find((s) => s.index === index);
    index = stage ? graph.nodes[stage.base]?.stage : undefined;
  }
  return chain;
}

/** The inline cache value for `--cache-to type=inline`, written into the image config. */
export async function inlineCacheField(store: Store, ctx: CacheExportContext, layers: string[]): Promise<Record<string, unknown>> {
  const records = await cacheRecords(store, ctx, 'min');
  const diffIds = (await ensureLayers(store, layers, 'gzip')).filter((l) => !l.empty).map((l) => l.diffId);
  return { [INLINE_CACHE_FIELD]: inlineCacheValue(records, diffIds) };
}

export async function exportCache(store: Store, specs: CacheSpec[], ctx: CacheExportContext, opts: CacheTransferOptions): Promise<void> {
  for (const spec of specs) {
    if (spec.type === 'inline') continue; // written into the image itself
    const contents: CacheContents = { records: await cacheRecords(store, ctx, spec.mode), aliases: cacheAliases(ctx) };
    if (spec.cacheMounts) contents.mounts = await mountLayers(store, ctx.mountIds);
    if (spec.type === 'registry') {
      await pushCache(store, contents, spec.location!, { insecureRegistries: opts.insecureRegistries, signal: opts.signal });
    } else {
      await writeLocalCache(store, contents, spec.location!, spec.tag);
    }
  }
}

/** Each cache-mount folder as a gzip layer blob in the store. */
async function mountLayers(store: Store, ids: string[]): Promise<CacheMountOut[]> {
  const out: CacheMountOut[] = [];
  for (const id of [...new Set(ids)].sort()) {
    const dir = cacheMountPath(store, id);
    if (!(await pathExists(dir))) continue;
    const staging = await store.tempDir('mount-layer');
    try {
      const file = join(staging, 'layer.tar.gz');
      const tar = createLayerTar(dir);
      const hash = hashingPassThrough();
      await pipeline(tar.stream, hash.stream, compressor('gzip'), createWriteStream(file));
      const blob = await store.ingestFile(file);
      out.push({ id, layer: { digest: blob.digest, size: blob.size, mediaType: MediaType.ociLayerGzip, diffId: hash.digest() } });
    } finally {
      await removeTree(staging);
    }
  }
  return out;
}
