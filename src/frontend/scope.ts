// Variables in scope while converting a stage, kept the way BuildKit keeps them: the image
// config's ENV, the environment RUN sees and `$NAME` expands to, and the stage's ARGs.

import type { EnvLookup } from './shell/lex.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** ARGs that configure BuildKit's SBOM scan rather than the build: never in the environment. */
export const BUILDER_ARGS: ReadonlySet<string> = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);

/** The five proxy settings BuildKit passes to every RUN from build args, named in either case. */
const PROXY_KINDS = ['HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY'];

/**
 * The proxy variables every RUN gets, from build args named like a proxy in any case, each in
 * both cases (curl reads only `http_proxy`). As in BuildKit: of two spellings, the one sorting
 * last wins; they never enter a cache key or the history.
 */
export function proxyEnvFromBuildArgs(buildArgs: ReadonlyMap<string, string>): Map<string, string> {
  const byKind = new Map<string, string>();
  for (const k of [...buildArgs.keys()].sort()) {
    const kind = k.toUpperCase();
    if (PROXY_KINDS.includes(kind)) byKind.set(kind, buildArgs.get(k)!);
  }
  const out = new Map<string, string>();
  for (const kind of PROXY_KINDS) {
    const v = byKind.get(kind);
    if (!v) continue;
    out.set(kind, v);
    out.set(kind.toLowerCase(), v);
  }
  return out;
}

/** Whether a build arg is one of the proxy settings, which need no ARG to be used. */
export function isProxyBuildArg(key: string): boolean {
  return PROXY_KINDS.includes(key.toUpperCase());
}

export function envGet(env: readonly string[], key: string): string | undefined {
  for (let i = env.length - 1; i >= 0; i--) {
    const e = env[i]!;
    if (e === key) return '';
    if (e.startsWith(key) && e.charCodeAt(key.length) === 61 /* = */) return e.slice(key.length + 1);
  }
  return undefined;
}

export interface DeclaredArg {
  key: string;
  /** undefined: declared without a value and none was given. */
  value?: string;
}

function splitEnv(e: string): [string, string] {
  const eq = e.indexOf('=');
  return eq < 0 ? [e, ''] : [e.slice(0, eq), e.slice(eq + 1)];
}

export class StageScope {
  /** The image config's ENV: a replaced key keeps its place, as BuildKit's addEnv does. */
  private readonly configEnv = new Map<string, string>();
  /**
   * What RUN sees and `$NAME` expands to (BuildKit's state env): ENV and ARG values in the order
   * they were set, so the later of `ENV X` and `ARG X=` wins, and a set key moves to the end.
   */
  private readonly runEnv = new Map<string, string>();
  private configEnvCache?: string[];
  /** In declaration order; a redeclared ARG keeps its first position. Replaced, never mutated. */
  private argList: readonly DeclaredArg[] = [];
  private cachedExec?: { env: string[]; proxyEnv: string[] };

  /**
   * A stage's scope over its base image's ENV. A stage built FROM another stage carries on that
   * stage's environment and ARGs, the ARG values included, then its image ENV is set again over
   * them (so in the new stage ENV wins over an ARG of the base).
   */
  constructor(env: readonly string[], base?: StageScope) {
    if (base) {
      for (const [k, v] of base.runEnv) this.runEnv.set(k, v);
      this.argList = base.argList;
    }
    for (const e of env) {
      const [k, v] = splitEnv(e);
      this.configEnv.set(k, v);
      this.runEnv.delete(k);
      this.runEnv.set(k, v);
    }
  }

  /** The image config's ENV, as KEY=VALUE. */
  get env(): string[] {
    this.configEnvCache ??= [...this.configEnv].map(([k, v]) => `${k}=${v}`);
    return this.configEnvCache;
  }

  setEnv(key: string, value: string): void {
    this.configEnv.set(key, value);
    this.configEnvCache = undefined;
    this.setRunEnv(key, value);
  }

  private setRunEnv(key: string, value: string): void {
    this.runEnv.delete(key);
    this.runEnv.set(key, value);
    this.cachedExec = undefined;
  }

  get args(): readonly DeclaredArg[] {
    return this.argList;
  }

  /** An ARG: declared for the history; with a value, also set for RUN and expansion. */
  declare(arg: DeclaredArg): void {
    const i = this.argList.findIndex((a) => a.key === arg.key);
    const next = [...this.argList];
    if (i >= 0) next[i] = arg;
    else next.push(arg);
    this.argList = next;
    if (arg.value !== undefined && !BUILDER_ARGS.has(arg.key)) this.setRunEnv(arg.key, arg.value);
    this.cachedExec = undefined;
  }

  /** What `$NAME` means in this stage. */
  lookup(): EnvLookup {
    return { get: (name) => this.runEnv.get(name) };
  }

  /** The names `lookup()` finds a value for. */
  definedNames(): string[] {
    return [...this.runEnv.keys()];
  }

  /** The exec's environment: the stage's, a default PATH if it has none, then the proxies. */
  execEnv(proxies: ReadonlyMap<string, string>): { env: string[]; proxyEnv: string[] } {
    this.cachedExec ??= this.computeExecEnv(proxies);
    return this.cachedExec;
  }

  private computeExecEnv(proxies: ReadonlyMap<string, string>): { env: string[]; proxyEnv: string[] } {
    const env = [...this.runEnv].map(([k, v]) => `${k}=${v}`);
    if (!this.runEnv.has('PATH')) env.push(`PATH=${DEFAULT_PATH}`);
    const proxyEnv: string[] = [];
    for (const [k, v] of proxies) {
      // A proxy the stage set itself (ENV, or a declared ARG) is the stage's, and part of the key.
      if (this.runEnv.has(k)) continue;
      env.push(`${k}=${v}`);
      proxyEnv.push(k);
    }
    return { env, proxyEnv };
  }

  /** `|2 A=1 B=2 ` prefix of RUN history (BuildKit's runCommandString). */
  runHistoryPrefix(): string {
    const parts = this.args.map((a) => `${a.key}=${this.runEnv.get(a.key) ?? a.value ?? ''}`);
    return parts.length ? `|${parts.length} ${parts.join(' ')} ` : '';
  }
}
