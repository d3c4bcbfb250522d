// Variables in scope while converting a stage: the image's ENV, the stage's ARGs, and how
// BuildKit combines them (ENV shadows ARG; the exec sees image env, then build args).

import type { EnvLookup } from './shell/lex.js';

export const PROXY_ARGS = new Set([
  'HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy',
]);

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

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

export class StageScope {
  // ENV as an ordered map (a replaced key keeps its place, as BuildKit's addEnv does); the
  // KEY=VALUE list is built only when a RUN or the image config needs it.
  private readonly envMap = new Map<string, string>();
  /** `KEY=VALUE` per key, built once per assignment rather than per list. */
  private readonly envEntries = new Map<string, string>();
  private envCache?: string[];
  /** In declaration order; a redeclared ARG keeps its first position. Replaced, never mutated. */
  private argList: readonly DeclaredArg[] = [];
  private cachedExec?: { env: string[]; proxyEnv: string[] };

  constructor(env: readonly string[]) {
    for (const e of env) {
      const eq = e.indexOf('=');
      const key = eq < 0 ? e : e.slice(0, eq);
      this.envMap.set(key, eq < 0 ? '' : e.slice(eq + 1));
      this.envEntries.set(key, eq < 0 ? `${e}=` : e);
    }
  }

  get env(): string[] {
    this.envCache ??= [...this.envEntries.values()];
    return this.envCache;
  }

  getEnv(key: string): string | undefined {
    return this.envMap.get(key);
  }

  setEnv(key: string, value: string): void {
    this.envMap.set(key, value);
    this.envEntries.set(key, `${key}=${value}`);
    this.envCache = undefined;
    this.cachedExec = undefined;
  }

  get args(): readonly DeclaredArg[] {
    return this.argList;
  }

  declare(arg: DeclaredArg): void {
    const i = this.argList.findIndex((a) => a.key === arg.key);
    const next = [...this.argList];
    if (i >= 0) next[i] = arg;
    else next.push(arg);
    this.argList = next;
    this.cachedExec = undefined;
  }

  argValue(key: string): string | undefined {
    return this.argList.find((a) => a.key === key)?.value;
  }

  /** What `$NAME` means in this stage: ENV first, then an ARG with a value. */
  lookup(): EnvLookup {
    return { get: (name) => this.envMap.get(name) ?? this.argValue(name) };
  }

  /** The names `lookup()` finds a value for, ENV first. */
  definedNames(): string[] {
    const names = [...this.envMap.keys()];
    for (const a of this.argList) if (a.value !== undefined && !this.envMap.has(a.key)) names.push(a.key);
    return names;
  }

  /** The exec's environment: image env, then build args (not shadowed, not proxies), then proxies. */
  execEnv(proxies: ReadonlyMap<string, string>): { env: string[]; proxyEnv: string[] } {
    this.cachedExec ??= this.computeExecEnv(proxies);
    return this.cachedExec;
  }

  private computeExecEnv(proxies: ReadonlyMap<string, string>): { env: string[]; proxyEnv: string[] } {
    const env = [...this.env];
    const has = (k: string) => this.envMap.has(k) || added.has(k);
    const added = new Set<string>();
    const add = (k: string, v: string) => {
      env.push(`${k}=${v}`);
      added.add(k);
    };
    if (!has('PATH')) add('PATH', DEFAULT_PATH);
    for (const a of this.args) {
      if (a.value === undefined || PROXY_ARGS.has(a.key) || has(a.key)) continue;
      add(a.key, a.value);
    }
    const proxyEnv: string[] = [];
    for (const [k, v] of proxies) {
      if (has(k)) continue;
      add(k, v);
      proxyEnv.push(k);
    }
    return { env, proxyEnv };
  }

  /** `|2 A=1 B=2 ` prefix of RUN history (BuildKit's runCommandString), proxies left out. */
  runHistoryPrefix(): string {
    const look = this.lookup();
    const parts = this.args.filter((a) => !PROXY_ARGS.has(a.key)).map((a) => `${a.key}=${look.get(a.key) ?? a.value ?? ''}`);
    return parts.length ? `|${parts.length} ${parts.join(' ')} ` : '';
  }
}
