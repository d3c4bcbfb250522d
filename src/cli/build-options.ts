// `kiln build` flags, checked and turned into plain values before anything runs.

import { readFileSync } from 'node:fs';
import { resolve, join, isAbsolute } from 'node:path';
import { availableParallelism } from 'node:os';
import { parseArgs, flagBool, flagList, flagString, parseKeyValues, type FlagSpec } from './args.js';
import { parseProgressMode, type ProgressMode } from './progress.js';
import { KilnError } from '../util/errors.js';
import type { Platform } from '../image/types.js';
import type { ExtraHost, NetworkMode } from '../graph/ops.js';
import type { Ulimit } from '../worker/types.js';
import { parseAddHosts, parseUlimits } from './run-flags.js';
import { parseCgroupFlags, type CgroupOptions } from './cgroup-flags.js';
import { ramInBytes } from '../util/size.js';
import { isDir } from '../util/fs.js';
import { parseBuildContexts, type BuildContextSpec } from './build-contexts.js';
import { parseAnnotationFlags, type Annotations } from '../exporter/annotations.js';
import { checkAttestationFlags } from './attest-flags.js';
import { normalizeReference } from '../registry/reference.js';
import { describeRemote, remoteContextOf, type RemoteContext } from './remote-context.js';
import { defaultPlatform, parsePlatform } from '../registry/platform.js';
import { agentSourceFor, type AgentSource } from '../worker/ssh/source.js';

export const BUILD_FLAGS: FlagSpec[] = [
  { name: 'tag', short: 't', kind: 'list' },
  { name: 'file', short: 'f', kind: 'string' },
  { name: 'build-arg', kind: 'list' },
  { name: 'label', kind: 'list' },
  { name: 'target', kind: 'string' },
  { name: 'platform', kind: 'string' },
  { name: 'output', short: 'o', kind: 'list' },
  { name: 'push', kind: 'boolean' },
  { name: 'pull', kind: 'boolean' },
  { name: 'iidfile', kind: 'string' },
  { name: 'metadata-file', kind: 'string' },
  { name: 'no-cache', kind: 'boolean' },
  { name: 'no-cache-filter', kind: 'list' },
  { name: 'jobs', kind: 'string' },
  { name: 'progress', kind: 'string' },
  { name: 'quiet', short: 'q', kind: 'boolean' },
  { name: 'root', kind: 'string' },
  { name: 'memory', short: 'm', kind: 'string' },
  { name: 'pids-limit', kind: 'string' },
  { name: 'cpus', kind: 'string' },
  { name: 'secret', kind: 'list' },
  { name: 'ssh', kind: 'list' },
  { name: 'allow', kind: 'list' },
  { name: 'network', kind: 'string' },
  { name: 'source-date-epoch', kind: 'string' },
  { name: 'explain', kind: 'boolean' },
  { name: 'cache-to', kind: 'list' },
  { name: 'cache-from', kind: 'list' },
  { name: 'insecure-registry', kind: 'list' },
  { name: 'add-host', kind: 'list' },
  { name: 'build-context', kind: 'list' },
  { name: 'annotation', kind: 'list' },
  { name: 'check', kind: 'boolean' },
  { name: 'call', kind: 'string' },
  { name: 'provenance', kind: 'string' },
  { name: 'sbom', kind: 'string' },
  { name: 'attest', kind: 'list' },
  // docker build flags with nothing left to do in kiln: images always land in its store (--load),
  // and no step leaves a container behind (--rm, --force-rm).
  { name: 'load', kind: 'boolean' },
  { name: 'rm', kind: 'boolean' },
  { name: 'force-rm', kind: 'boolean' },
  { name: 'shm-size', kind: 'string' },
  { name: 'ulimit', kind: 'list' },
  // The classic builder's resource flags (cgroup-flags.ts).
  { name: 'cpu-shares', short: 'c', kind: 'string' },
  { name: 'cpu-period', kind: 'string' },
  { name: 'cpu-quota', kind: 'string' },
  { name: 'cpuset-cpus', kind: 'string' },
  { name: 'cpuset-mems', kind: 'string' },
  { name: 'memory-swap', kind: 'string' },
  { name: 'cgroup-parent', kind: 'string' },
  // Flags docker buildx accepts and ignores: so does kiln, with buildx's warnings.
  { name: 'compress', kind: 'boolean' },
  { name: 'isolation', kind: 'string' },
  { name: 'security-opt', kind: 'list' },
  { name: 'squash', kind: 'boolean' },
  // docker build's content trust applies to `docker pull`s of FROM images by the classic
  // builder (buildx hides the flag); buildx's --builder picks a BuildKit instance, which kiln is.
  { name: 'disable-content-trust', kind: 'boolean' },
  { name: 'builder', kind: 'string' },
];

/** What buildx says of the flags it ignores, when they are given. */
const IGNORED_FLAG_WARNINGS: Record<string, string> = {
  isolation: 'isolation flag is deprecated with BuildKit.',
  'security-opt': 'security-opt flag is deprecated. "RUN --security=insecure" should be used with BuildKit.',
  squash: 'experimental flag squash is removed with BuildKit. You should squash inside build using a multi-stage Dockerfile for efficiency.',
  builder: 'kiln has no builder instances: --builder is ignored.',
};

export interface BuildOptions {
  contextDir: string;
  /** A git repository or URL given as the context; contextDir then only describes it. */
  remoteContext?: RemoteContext;
  /** The context was fetched (standard input, git, URL): taken whole, without a .dockerignore. */
  wholeContext?: boolean;
  /** --build-context: more contexts, by the names a Dockerfile refers to them with. */
  buildContexts: BuildContextSpec[];
  dockerfilePath: string;
  /** As the user named it, for error messages. */
  dockerfileName: string;
  tags: string[];
  buildArgs: Map<string, string>;
  /** --label K=V: set on the image, over the Dockerfile's LABELs of the same key. */
  labels: Record<string, string>;
  target?: string;
  platform: Platform;
  outputs: string[];
  /** --annotation: for the image's manifest, or its descriptor in OCI layout outputs. */
  annotations: Annotations;
  push: boolean;
  pull: boolean;
  iidfile?: string;
  metadataFile?: string;
  noCache: boolean;
  noCacheFilter: string[];
  jobs: number;
  progress: ProgressMode;
  root?: string;
  memoryBytes?: number;
  pids?: number;
  cpus?: number;
  secrets: Map<string, Buffer>;
  sshAgents: Map<string, AgentSource>;
  allowInsecure: boolean;
  /** `--allow network.host`: RUN --network=host is permitted (BuildKit's entitlement). */
  allowNetworkHost: boolean;
  network?: NetworkMode;
  /** --add-host: names added to every RUN step's /etc/hosts. */
  extraHosts: ExtraHost[];
  shmBytes?: number;
  ulimits: Ulimit[];
  /** --cpu-shares, --cpu-period, --cpu-quota, --cpuset-*, --memory-swap. */
  cgroupOptions: CgroupOptions;
  /** Said once the build starts: flags accepted but ignored. */
  flagWarnings: string[];
  sourceDateEpoch?: number;
  explain: boolean;
  /** --check (--call check): report the Dockerfile's build checks and build nothing. */
  check: boolean;
  /** --call targets: list the Dockerfile's stages and build nothing. */
  listTargets: boolean;
  cacheTo: string[];
  cacheFrom: string[];
  insecureRegistries: string[];
}

/**
 * `--build-arg BUILDKIT_INLINE_CACHE=1`, docker build's way to ask for an inline cache, is
 * `--cache-to type=inline`, as with BuildKit.
 */
function withInlineCacheArg(cacheTo: string[], buildArgs: Map<string, string>): string[] {
  const v = buildArgs.get('BUILDKIT_INLINE_CACHE');
  const wanted = v !== undefined && ['1', 'true'].includes(v.toLowerCase());
  return wanted && !cacheTo.some((c) => /(^|,)type=inline(,|$)/.test(c)) ? [...cacheTo, 'type=inline'] : cacheTo;
}

/** BuildOptions.dockerfilePath when the Dockerfile is read from standard input (`-f -`). */
export const STDIN_DOCKERFILE = '-';
/** BuildOptions.contextDir when the context is read from standard input (`kiln build -`). */
export const STDIN_CONTEXT = '-';

export function parseBuildOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): BuildOptions {
  const a = parseArgs(argv, BUILD_FLAGS, 'build');
  if (a.positional.length !== 1) {
    throw new KilnError(`build: expected exactly one context (a folder, -, or a git or http URL), got ${a.positional.length} (usage: kiln build [flags] CONTEXT)`, { exitCode: 2 });
  }
  const fromStdin = a.positional[0] === '-';
  // As docker: a folder of that name wins over a URL-looking name.
  const remoteContext = fromStdin || isDir(a.positional[0]!) ? undefined : remoteContextOf(a.positional[0]!);
  const contextDir = fromStdin ? STDIN_CONTEXT : remoteContext ? describeRemote(remoteContext) : resolve(a.positional[0]!);
  checkAttestationFlags(flagString(a, 'provenance'), flagString(a, 'sbom'), flagList(a, 'attest'));
  const fileFlag = flagString(a, 'file');
  if (fromStdin && fileFlag === '-') throw new KilnError('-f - and a context of - cannot both read standard input', { exitCode: 2 });
  // `-f -`: the Dockerfile comes from standard input, as with docker build.
  // With the context on standard input, -f names a file inside it (resolved once it is read).
  // With a remote context, -f names a file inside it (read once it is fetched).
  const dockerfilePath = fileFlag === '-' || fromStdin ? STDIN_DOCKERFILE : remoteContext ? fileFlag ?? 'Dockerfile' : fileFlag ? resolve(fileFlag) : join(contextDir, 'Dockerfile');
  const buildArgs = new Map<string, string>();
  for (const kv of flagList(a, 'build-arg')) {
    const eq = kv.indexOf('=');
    // `--build-arg NAME` takes the value from the environment, as docker does.
    if (eq < 0) {
      const v = env[kv];
      if (v !== undefined) buildArgs.set(kv, v);
    } else buildArgs.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  const labels: Record<string, string> = {};
  for (const kv of flagList(a, 'label')) {
    const eq = kv.indexOf('=');
    const key = eq < 0 ? kv : kv.slice(0, eq);
    if (key === '') throw new KilnError(`--label: expected KEY=VALUE, got "${kv}"`, { exitCode: 2 });
    labels[key] = eq < 0 ? '' : kv.slice(eq + 1);
  }
  // buildx passes SOURCE_DATE_EPOCH as a build arg, which BuildKit (0.11 on) reads as the epoch.
  const sde = flagString(a, 'source-date-epoch') ?? buildArgs.get('SOURCE_DATE_EPOCH') ?? env.SOURCE_DATE_EPOCH;
  const memoryBytes = parseSize(flagString(a, 'memory'), '--memory');
  const cpus = parseCpus(flagString(a, 'cpus'));
  const platformFlag = flagString(a, 'platform');
  const call = parseCall(flagString(a, 'call'));
  return {
    contextDir,
    ...(remoteContext ? { remoteContext } : {}),
    buildContexts: parseBuildContexts(flagList(a, 'build-context')),
    dockerfilePath,
    dockerfileName: fileFlag === '-' ? '<stdin>' : fileFlag ?? 'Dockerfile',
    tags: flagList(a, 'tag').map((t) => normalizeReference(t, '--tag')),
    buildArgs,
    labels,
    // An empty --target (a script's unset variable) is no target, as in docker build.
    target: flagString(a, 'target') || undefined,
    platform: platformFlag ? parsePlatform(platformFlag, '--platform') : defaultPlatform(),
    outputs: flagList(a, 'output'),
    annotations: parseAnnotationFlags(flagList(a, 'annotation')),
    push: flagBool(a, 'push'),
    pull: flagBool(a, 'pull'),
    iidfile: flagString(a, 'iidfile'),
    metadataFile: flagString(a, 'metadata-file'),
    noCache: flagBool(a, 'no-cache'),
    noCacheFilter: flagList(a, 'no-cache-filter').flatMap((s) => s.split(',')).filter(Boolean),
    jobs: positiveInt(flagString(a, 'jobs'), '--jobs') ?? availableParallelism(),
    progress: flagBool(a, 'quiet') ? 'quiet' : parseProgressMode(flagString(a, 'progress'), env),
    root: flagString(a, 'root'),
    memoryBytes,
    pids: positiveInt(flagString(a, 'pids-limit'), '--pids-limit'),
    cpus,
    secrets: parseSecrets(flagList(a, 'secret'), env),
    sshAgents: parseSsh(flagList(a, 'ssh'), env),
    allowInsecure: parseAllow(flagList(a, 'allow')).has('security.insecure'),
    allowNetworkHost: parseAllow(flagList(a, 'allow')).has('network.host'),
    network: parseNetwork(flagString(a, 'network')),
    extraHosts: parseAddHosts(flagList(a, 'add-host')),
    shmBytes: parseSize(flagString(a, 'shm-size'), '--shm-size'),
    ulimits: parseUlimits(flagList(a, 'ulimit')),
    cgroupOptions: parseCgroupFlags({
      cpuShares: flagString(a, 'cpu-shares'), cpuPeriod: flagString(a, 'cpu-period'), cpuQuota: flagString(a, 'cpu-quota'),
      memorySwap: flagString(a, 'memory-swap'), cpusetCpus: flagString(a, 'cpuset-cpus'), cpusetMems: flagString(a, 'cpuset-mems'),
      cgroupParent: flagString(a, 'cgroup-parent'),
    }, memoryBytes, cpus),
    flagWarnings: Object.entries(IGNORED_FLAG_WARNINGS).filter(([name]) => a.flags.has(name)).map(([, w]) => w),
    sourceDateEpoch: sde === undefined || sde === '' ? undefined : parseEpoch(sde),
    explain: flagBool(a, 'explain'),
    check: flagBool(a, 'check') || call === 'check',
    listTargets: call === 'targets',
    cacheTo: withInlineCacheArg(flagList(a, 'cache-to'), buildArgs),
    cacheFrom: flagList(a, 'cache-from'),
    insecureRegistries: flagList(a, 'insecure-registry'),
  };
}

/** `--call build` (the default), `check` or `targets`, as buildx; its other calls are not kiln's. */
function parseCall(v: string | undefined): 'build' | 'check' | 'targets' {
  if (v === undefined || v === 'build' || v === 'check' || v === 'targets') return v ?? 'build';
  throw new KilnError(`--call: expected build, check or targets, got "${v}"`, { exitCode: 2 });
}

function positiveInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) <= 0) throw new KilnError(`${flag}: expected a positive whole number, got "${v}"`, { exitCode: 2 });
  return Number(v);
}

/** `512m`, `1g`, `1024k`, `100000` (bytes), as docker's --memory. */
export function parseSize(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const bytes = ramInBytes(v);
  if (bytes === undefined) throw new KilnError(`${flag}: expected a size such as 512m or 2g, got "${v}"`, { exitCode: 2 });
  if (bytes <= 0) throw new KilnError(`${flag}: must be more than 0`, { exitCode: 2 });
  return bytes;
}

function parseCpus(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new KilnError(`--cpus: expected a positive number such as 1.5, got "${v}"`, { exitCode: 2 });
  return n;
}

function parseEpoch(v: string): number {
  if (!/^\d+$/.test(v)) throw new KilnError(`SOURCE_DATE_EPOCH / --source-date-epoch / --build-arg SOURCE_DATE_EPOCH: expected whole seconds, got "${v}"`, { exitCode: 2 });
  return Number(v);
}

function parseNetwork(v: string | undefined): NetworkMode | undefined {
  if (v === undefined) return undefined;
  if (v === 'default' || v === 'none' || v === 'host') return v;
  throw new KilnError(`--network: expected default, none or host, got "${v}"`, { exitCode: 2 });
}

function parseAllow(values: string[]): Set<string> {
  const out = new Set<string>();
  for (const v of values.flatMap((s) => s.split(','))) {
    if (v !== 'security.insecure' && v !== 'network.host') {
      throw new KilnError(`--allow: unknown entitlement "${v}" (expected security.insecure or network.host)`, { exitCode: 2 });
    }
    out.add(v);
  }
  return out;
}

/** `id=X,src=FILE`, `id=X,env=VAR`, or `id=X` (from the environment variable X, as buildx). */
function parseSecrets(values: string[], env: NodeJS.ProcessEnv): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const v of values) {
    const kv = parseKeyValues(v, '--secret');
    const id = kv.get('id');
    if (!id) throw new KilnError(`--secret: "${v}" has no id=`, { exitCode: 2 });
    for (const k of kv.keys()) {
      if (!['id', 'src', 'source', 'env', 'type'].includes(k)) throw new KilnError(`--secret: unknown key "${k}" in "${v}"`, { exitCode: 2 });
    }
    const src = kv.get('src') ?? kv.get('source');
    const envName = kv.get('env') ?? (src === undefined ? id : undefined);
    if (src !== undefined) {
      try {
        out.set(id, readFileSync(isAbsolute(src) ? src : resolve(src)));
      } catch (err) {
        throw new KilnError(`--secret id=${id}: cannot read ${src}: ${(err as Error).message}`, { exitCode: 2 });
      }
    } else if (envName !== undefined) {
      const value = env[envName];
      if (value === undefined) throw new KilnError(`--secret id=${id}: environment variable ${envName} is not set`, { exitCode: 2 });
      out.set(id, Buffer.from(value));
    }
  }
  return out;
}

/** `ID` (the agent at $SSH_AUTH_SOCK), `ID=SOCKET`, `ID=KEYFILE[,KEYFILE...]`. */
function parseSsh(values: string[], env: NodeJS.ProcessEnv): Map<string, AgentSource> {
  const out = new Map<string, AgentSource>();
  for (const v of values) {
    const eq = v.indexOf('=');
    const id = eq < 0 ? v : v.slice(0, eq);
    const paths = eq < 0 ? [] : v.slice(eq + 1).split(',').filter(Boolean);
    if (!id) throw new KilnError(`--ssh: expected ID or ID=SOCKET|KEYFILE[,KEYFILE...], got "${v}"`, { exitCode: 2 });
    if (out.has(id)) throw new KilnError(`--ssh ${id}: given twice`, { exitCode: 2 });
    if (paths.length === 0) {
      if (!env.SSH_AUTH_SOCK) throw new KilnError(`--ssh ${id}: no agent socket (SSH_AUTH_SOCK is not set); give one, or key files, as --ssh ${id}=PATH`, { exitCode: 2 });
      paths.push(env.SSH_AUTH_SOCK);
    }
    try {
      out.set(id, agentSourceFor(paths));
    } catch (err) {
      throw new KilnError(`--ssh ${id}: ${(err as Error).message}`, { exitCode: 2 });
    }
  }
  return out;
}
