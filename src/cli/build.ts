// `kiln build`, end to end: Dockerfile -> graph -> solved stages -> image -> outputs.
// This is the one place that knows every station; each station knows only its neighbour.

import { lstat, readFile, rm, stat } from 'node:fs/promises';
import { MediaType, type Descriptor, type ImageManifest } from '../image/types.js';
import { join } from 'node:path';
import { STDIN_CONTEXT, STDIN_DOCKERFILE, type BuildOptions } from './build-options.js';
import { readStdinContext } from './stdin-context.js';
import { fetchRemoteContext } from './remote-context.js';
import { makeProgress } from './progress.js';
import { withSignals } from './signals.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { dockerfileToGraph } from '../frontend/index.js';
import { readIgnorePatterns } from '../frontend/dockerignore.js';
import { contextSourceName, type NamedContext } from '../frontend/named-contexts.js';
import type { BuildContextSpec } from './build-contexts.js';
import { isLintRule } from '../frontend/lint.js';
import { formatTargets } from './targets-report.js';
import { formatCheckReport } from './check-report.js';
import type { BuildGraph, Digest, ExtraHost } from '../graph/ops.js';
import { solve, type Workers } from '../solver/solve.js';
import { makeImageResolver } from './image-source.js';
import { loadImage } from '../image/load.js';
import { writeImage } from '../image/assemble.js';
import { ensureLayer } from '../image/layers.js';
import type { LayerCompression, Store } from '../store/store.js';
import type { Annotations } from '../exporter/annotations.js';
import { distributable, exportImage, parseOutputSpec, writeIidFile, writeMetadataFile, type OutputSpec } from '../exporter/index.js';
import { normalizeReference, parseReference, repositoryName } from '../registry/reference.js';
import { runExec, sweepStaleSandboxes } from '../worker/exec/index.js';
import { runFile, fileOpContentKey, listFileOpContent } from '../worker/file/index.js';
import { startPush, type PushSession } from '../registry/push.js';
import { openCacheImports, exportCache, inlineCacheField, parseCacheSpec, type CacheExportContext } from './cache-transfer.js';

/** Layers are stored uncompressed, as a local image store does: pushes and OCI exports compress once. */
const LOCAL_COMPRESSION: LayerCompression = 'uncompressed';

export async function runBuild(o: BuildOptions): Promise<number> {
  // As docker and buildx: a build that fails must not leave the id of an earlier one behind.
  // Only a file is removed: --iidfile /dev/null must stay a device.
  for (const f of [o.iidfile, o.metadataFile]) {
    if (f && (await lstat(f).catch(() => undefined))?.isFile()) await rm(f, { force: true });
  }
  const progress = makeProgress(o.progress);
  for (const text of o.flagWarnings) progress.sink({ type: 'message', level: 'warning', text });
  try {
    return await withSignals(async (signal) => {
      const remote = o.remoteContext;
      const local = o.contextDir !== STDIN_CONTEXT && !remote;
      if (local && !o.buildContexts.some((c) => c.kind === 'remote')) {
        return await buildIn(o, await readDockerfile(o), buildIdentity(o.contextDir, o.dockerfilePath, o), progress, signal);
      }
      // Contexts fetched into the store's tmp/ for this build only.
      const store = await openStore(o.root);
      const releases: Array<() => Promise<void>> = [];
      // The build's secrets and --ssh agents reach a private repository (worker/git/fetch.ts).
      const fetchOpts = { keepGitDir: isTrue(o.buildArgs.get('BUILDKIT_CONTEXT_KEEP_GIT_DIR')), signal, secrets: o.secrets, sshAgents: o.sshAgents };
      try {
        const buildContexts: BuildContextSpec[] = [];
        for (const c of o.buildContexts) {
          if (c.kind !== 'remote') buildContexts.push(c);
          else {
            const f = await fetchRemoteContext(store, c.remote, undefined, fetchOpts);
            releases.push(f.release);
            buildContexts.push({ name: c.name, key: c.key, kind: 'dir', dir: f.dir, fetched: true });
          }
        }
        const withContexts = { ...o, buildContexts };
        if (local) return await buildIn(withContexts, await readDockerfile(o), buildIdentity(o.contextDir, o.dockerfilePath, o), progress, signal, store);
        const dockerfileFromStdin = remote !== undefined && o.dockerfilePath === STDIN_DOCKERFILE;
        const fetched = remote
          ? await fetchRemoteContext(store, remote, dockerfileFromStdin ? undefined : o.dockerfileName, fetchOpts)
          : await readStdinContext(store, o.dockerfileName);
        releases.push(fetched.release);
        const inside = {
          ...withContexts, contextDir: fetched.dir, dockerfileName: fetched.dockerfileName, wholeContext: true,
          dockerfilePath: dockerfileFromStdin ? STDIN_DOCKERFILE : join(fetched.dir, fetched.dockerfileName),
        };
        const dockerfile = dockerfileFromStdin ? await readDockerfile(o) : fetched.dockerfile;
        // One identity per remote, and one for every build from standard input (the folder is new each time).
        return await buildIn(inside, dockerfile, buildIdentity(remote ? o.contextDir : STDIN_CONTEXT, fetched.dockerfileName, o), progress, signal, store);
      } finally {
        for (const release of releases.reverse()) await release();
      }
    });
  } finally {
    progress.close();
  }
}

/** A build arg BuildKit reads as a boolean. */
function isTrue(v: string | undefined): boolean {
  return v !== undefined && /^(1|t|true)$/i.test(v);
}

/** "The same Dockerfile" across builds, for --explain. */
function buildIdentity(context: string, dockerfile: string, o: BuildOptions): string {
  return `${context}\0${dockerfile}\0${o.target ?? ''}`;
}

/**
 * The build of a context folder whose Dockerfile has been read; `identity` names it for --explain.
 * The store is opened here, after the flags are checked, unless the caller needed it already.
 */
async function buildIn(
  o: BuildOptions, dockerfile: string, identity: string, progress: ReturnType<typeof makeProgress>, signal: AbortSignal, opened?: Store,
): Promise<number> {
  await assertDir(o.contextDir, 'the build context');
  if (o.listTargets) {
    progress.close();
    process.stdout.write(formatTargets(dockerfile, o.dockerfileName));
    return 0;
  }
  for (const c of o.buildContexts) if (c.kind === 'dir') await assertDir(c.dir, `--build-context ${c.name}:`);
  const outputs: OutputSpec[] = withAnnotationFlags(o.outputs.map((t) => parseOutputSpec(t)), o.annotations);
  // Bad cache specs fail before any step runs, not after the build.
  const cacheTo = o.cacheTo.map((t) => parseCacheSpec(t, '--cache-to'));
  const cacheFrom = o.cacheFrom.map((t) => parseCacheSpec(t, '--cache-from'));
  const store = opened ?? (await openStore(o.root));
  await sweepStaleSandboxes(store);
  // As in BuildKit, a context that is not a local folder (a tar on standard input, a git
  // repository, a URL) is taken whole: its .dockerignore is not read.
  const ignorePatterns = o.wholeContext ? [] : (await readIgnorePatterns(o.contextDir, o.dockerfilePath === STDIN_DOCKERFILE ? undefined : o.dockerfilePath)).patterns;
  const layouts = new Map(o.buildContexts.flatMap((c) => (c.kind === 'layout' ? [[c.layout.ref, c.layout] as const] : [])));
  const resolver = makeImageResolver(store, { pull: o.pull, insecureRegistries: o.insecureRegistries, signal, emit: progress.sink, layouts });

  const graph = await dockerfileToGraph({
    dockerfile,
    dockerfileName: o.dockerfileName,
    buildArgs: o.buildArgs,
    target: o.target,
    platform: o.platform,
    ignorePatterns,
    namedContexts: await namedContexts(o.buildContexts),
    allStages: o.check,
    resolveImage: resolver,
  });
  if (o.check) {
    const checks = graph.warnings.filter(isLintRule);
    progress.close();
    process.stdout.write(formatCheckReport(checks, dockerfile));
    return checks.length > 0 ? 1 : 0;
  }
  for (const w of graph.warnings) {
    const where = w.location ? `${w.location.file}:${w.location.line}: ` : '';
    progress.sink({ type: 'message', level: 'warning', text: `${where}${w.message}` });
  }
  if (!o.allowNetworkHost) refuseHostNetwork(graph);
  if (o.network) applyDefaultNetwork(graph, o.network);
  if (o.extraHosts.length > 0) addHosts(graph, o.extraHosts);
  const noCacheStages = stagesNamed(graph, o.noCacheFilter);
  const cacheImports = await openCacheImports(store, cacheFrom, { insecureRegistries: o.insecureRegistries, signal });

  const targetOps = new Set<unknown>(Object.values(graph.nodes).filter((n) => n.stage === graph.target).map((n) => n.op));
  // A layer of the image is archived while the steps after it run (a RUN leaves this
  // process waiting on its sandbox); the image write below then finds it made.
  const archiveEarly = <T extends { snapshot: string | null }>(op: unknown, out: T): T => {
    if (out.snapshot && targetOps.has(op)) {
      ensureLayer(store, out.snapshot, LOCAL_COMPRESSION, undefined, { sourceDateEpoch: o.sourceDateEpoch }).catch(() => undefined);
    }
    return out;
  };
  const workers: Workers = {
    loadImage: async (digest) => {
      const img = await loadImage(store, digest, { signal });
      return { layers: img.layerSnapshots, history: img.config.history ?? [] };
    },
    runExec: async (op, inputs, ctx, snapshotId) => archiveEarly(op, await runExec(op, inputs, ctx, snapshotId)),
    runFile: async (op, inputs, ctx, snapshotId) => archiveEarly(op, await runFile(op, inputs, ctx, snapshotId)),
    fileContentKey: fileOpContentKey,
    listContent: listFileOpContent,
    ensureLayers: async (ids) => cacheImports?.ensureLayers(ids),
  };
  const result = await solve(graph, {
    store,
    workers,
    contextDirs: new Map([
      [contextSourceName(), o.contextDir],
      ...o.buildContexts.flatMap((c) => (c.kind === 'dir' ? [[contextSourceName(c.name), c.dir] as const] : [])),
    ]),
    settings: {
      secrets: o.secrets,
      sshAgents: o.sshAgents,
      limits: { memoryBytes: o.memoryBytes, pids: o.pids, cpus: o.cpus, shmBytes: o.shmBytes, ulimits: o.ulimits, ...o.cgroupOptions },
      allowInsecure: o.allowInsecure,
      sourceDateEpoch: o.sourceDateEpoch,
    },
    jobs: o.jobs,
    remoteCache: cacheImports,
    noCache: o.noCache,
    noCacheStages,
    buildIdentity: identity,
    explain: o.explain,
    emit: progress.sink,
    signal,
  });

  const stage = graph.stages.find((s) => s.index === graph.target)!;
  const image = result.stages.get(graph.target)!;
  await cacheImports?.ensureLayers(image.layers);
  const cacheContext: CacheExportContext = { graph, result, mountIds: cacheMountIds(graph) };
  const inline = cacheTo.some((c) => c.type === 'inline');
  const written = await writeImage(store, {
    layers: image.layers,
    config: {
      architecture: stage.platform.architecture,
      os: stage.platform.os,
      ...(stage.platform.variant ? { variant: stage.platform.variant } : {}),
      ...(stage.author ? { author: stage.author } : {}),
      config: Object.keys(o.labels).length > 0 ? { ...stage.config, Labels: { ...stage.config.Labels, ...o.labels } } : stage.config,
    },
    history: image.history,
    sourceDateEpoch: o.sourceDateEpoch,
    compression: LOCAL_COMPRESSION,
    annotations: o.annotations.manifest,
    ...(inline ? { extraConfig: await inlineCacheField(store, cacheContext, image.layers) } : {}),
  });

  const isImage = (spec: OutputSpec) => spec.type === 'image' || spec.type === 'registry';
  const images = outputs.filter(isImage);
  const names = new Set([...o.tags, ...images.flatMap((spec) => spec.names.map((n) => normalizeReference(n, '--output name')))]);
  for (const spec of outputs.filter((s) => !isImage(s))) {
    await exportImage(store, written.manifestDigest, spec, { signal, names: [...names] });
  }
  for (const t of o.tags) await store.setRef(t, written.manifestDigest);
  // An image or registry output is its own export (compression, media types, annotations). A
  // push uploads each layer as soon as it is compressed; tags are put only once every output is
  // written, so an output that fails tags nothing.
  const pushes: { session: PushSession; digest: Digest }[] = [];
  const started: PushSession[] = [];
  const begin = (ref: string, insecure: string[]): PushSession => {
    const session = startPush(store, ref, { insecureRegistries: [...o.insecureRegistries, ...insecure], signal });
    started.push(session);
    return session;
  };
  try {
    if (o.push && o.tags.length > 0) {
      const sessions = o.tags.map((ref) => begin(ref, []));
      const digest = await distributable(store, written.manifestDigest, 'gzip', (layer) => sessions[0]!.upload(layer));
      pushes.push(...sessions.map((session) => ({ session, digest })));
    }
    for (const spec of images) {
      const pushing = spec.type === 'registry' || spec.push;
      const insecure = (n: string) => (spec.insecure ? [parseReference(n).registry] : []);
      // A push by digest has no reference before its manifest exists; it uploads afterwards.
      const first = pushing && !spec.pushByDigest && spec.names[0] !== undefined ? normalizeReference(spec.names[0], '--output name') : undefined;
      const early = first === undefined ? undefined : begin(first, insecure(first));
      const r = await exportImage(store, written.manifestDigest, spec, { signal, names: [], ...(early ? { onLayer: (layer) => early.upload(layer) } : {}) });
      if (!spec.store) for (const n of r.names) if (!o.tags.includes(n)) names.delete(n);
      if (!pushing) continue;
      for (const n of r.names) {
        const ref = spec.pushByDigest ? `${repositoryName(parseReference(n))}@${r.manifestDigest}` : n;
        pushes.push({ session: early && n === first ? early : begin(ref, insecure(n)), digest: r.manifestDigest });
      }
    }
    for (const p of pushes) await p.session.finish(p.digest);
  } finally {
    await Promise.allSettled(started.map((session) => session.settle()));
  }
  const pushed = pushes[0]?.digest;
  await exportCache(store, cacheTo, cacheContext, { insecureRegistries: o.insecureRegistries, signal });

  // The manifest the image is known by (the pushed one, when its layers were recompressed).
  const manifestDigest = pushed ?? written.manifestDigest;
  const manifestBytes = await store.readBlob(manifestDigest);
  const descriptor: Descriptor = {
    mediaType: (JSON.parse(manifestBytes.toString('utf8')) as ImageManifest).mediaType ?? MediaType.ociManifest,
    digest: manifestDigest,
    size: manifestBytes.length,
  };
  const digests = { manifestDigest, configDigest: written.configDigest, descriptor, names: [...names], pushed: pushed !== undefined };
  if (o.iidfile) await writeIidFile(o.iidfile, digests);
  if (o.metadataFile) await writeMetadataFile(o.metadataFile, digests);
  progress.sink({ type: 'result', ...digests });
  progress.close();
  // (Not after an archive written to standard output, as docker: it would be part of the archive.)
  if (o.progress === 'quiet' && !outputs.some((spec) => spec.dest === '-')) process.stdout.write(`${written.configDigest}\n`);
  else if (o.progress !== 'json') {
    // As BuildKit: the image id (config digest), the same whatever the layers' compression.
    process.stderr.write(`writing image ${written.configDigest} done\n`);
    for (const t of names) process.stderr.write(`naming to ${t} done\n`);
  }
  return 0;
}

async function readDockerfile(o: BuildOptions): Promise<string> {
  if (o.dockerfilePath === STDIN_DOCKERFILE) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(o.dockerfilePath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (err as Error).message;
    throw new KilnError(`cannot read the Dockerfile ${o.dockerfileName}: ${why}`, { exitCode: 1 });
  }
}

async function assertDir(dir: string, what: string): Promise<void> {
  let ok = false;
  try {
    ok = (await stat(dir)).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new KilnError(`${what} ${dir} is not a folder`, { exitCode: 2 });
}

/**
 * --annotation: manifest annotations are written into the image itself (every output has them);
 * descriptor ones go to each OCI layout output, and need one.
 */
function withAnnotationFlags(outputs: OutputSpec[], flags: Annotations): OutputSpec[] {
  if (Object.keys(flags.manifestDescriptor).length === 0) return outputs;
  const layouts = (spec: OutputSpec) => spec.type === 'oci' || spec.type === 'docker';
  if (!outputs.some(layouts)) {
    throw new KilnError('--annotation manifest-descriptor:...: only an OCI layout output (-o type=oci or type=docker) has a manifest descriptor', { exitCode: 2 });
  }
  return outputs.map((spec) => (layouts(spec)
    ? { ...spec, annotations: { ...spec.annotations, manifestDescriptor: { ...flags.manifestDescriptor, ...spec.annotations.manifestDescriptor } } }
    : spec));
}

/** The frontend's view of --build-context: a folder comes with its own .dockerignore, as in BuildKit. */
async function namedContexts(specs: BuildContextSpec[]): Promise<Map<string, NamedContext>> {
  const out = new Map<string, NamedContext>();
  for (const c of specs) {
    if (c.kind === 'remote') throw new Error(`--build-context ${c.name}: fetched before the build`);
    out.set(c.key, c.kind === 'dir'
      ? { name: c.name, kind: 'dir', ignorePatterns: c.fetched ? [] : (await readIgnorePatterns(c.dir)).patterns }
      : { name: c.name, kind: 'image', ref: c.kind === 'layout' ? c.layout.ref : c.ref });
  }
  return out;
}

/** As BuildKit: a step may ask for the host's network only when the user allowed it. */
function refuseHostNetwork(graph: BuildGraph): void {
  for (const n of Object.values(graph.nodes)) {
    if (n.op.kind === 'exec' && n.op.network === 'host') {
      throw new KilnError('RUN --network=host is not allowed without --allow network.host', {
        location: n.location ? { file: n.location.file, line: n.location.line, column: n.location.column } : undefined,
        exitCode: 1,
      });
    }
  }
}

function applyDefaultNetwork(graph: BuildGraph, network: 'default' | 'none' | 'host'): void {
  for (const n of Object.values(graph.nodes)) {
    if (n.op.kind === 'exec' && n.op.network === 'default') n.op.network = network;
  }
}

/** Part of each RUN's key, as in BuildKit: a name may resolve elsewhere and change what a step fetches. */
function addHosts(graph: BuildGraph, hosts: ExtraHost[]): void {
  for (const n of Object.values(graph.nodes)) {
    if (n.op.kind === 'exec') n.op.extraHosts = hosts;
  }
}

function stagesNamed(graph: BuildGraph, names: string[]): Set<number> {
  const out = new Set<number>();
  for (const name of names) {
    const s = graph.stages.find((st) => st.name === name || String(st.index) === name);
    if (!s) throw new KilnError(`--no-cache-filter: no stage named "${name}" is part of this build`, { exitCode: 2 });
    out.add(s.index);
  }
  return out;
}

function cacheMountIds(graph: BuildGraph): string[] {
  const ids: string[] = [];
  for (const n of Object.values(graph.nodes)) {
    if (n.op.kind === 'exec') for (const m of n.op.mounts) if (m.type === 'cache') ids.push(m.id);
  }
  return ids;
}
