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
    const eq = e.indexOf('=');
    if ((eq < 0 ? e : e.slice(0, eq)) === key) return eq < 0 ? '' : e.slice(eq + 1);
  }
  return undefined;
}

/** Replaces KEY in place or appends it (BuildKit's addEnv). */
export function envSet(env: string[], key: string, value: string): string[] {
  const out = [...env];
  const i = out.findIndex((e) => (e.indexOf('=') < 0 ? e : e.slice(0, e.indexOf('='))) === key);
  if (i >= 0) out[i] = `${key}=${value}`;
  else out.push(`${key}=${value}`);
  return out;
}

export interface DeclaredArg {
  key: string;
  /** undefined: declared without a value and none was given. */
  value?: string;
}

export class StageScope {
  /** In declaration order; a redeclared ARG keeps its first position. */
  readonly args: DeclaredArg[] = [];

  constructor(public env: string[]) {}

  declare(arg: DeclaredArg): void {
    const i = this.args.findIndex((a) => a.key === arg.key);
    if (i >= 0) this.args[i] = arg;
    else this.args.push(arg);
  }

  argValue(key: string): string | undefined {
    return this.args.find((a) => a.key === key)?.value;
  }

  /** What `$NAME` means in this stage: ENV first, then an ARG with a value. */
  lookup(): EnvLookup {
    return { get: (name) => envGet(this.env, name) ?? this.argValue(name) };
  }

  /** A snapshot of lookup(): later ENV/ARG changes do not show through. */
  frozenLookup(): EnvLookup {
    const env = [...this.env];
    const args = new Map(this.args.map((a) => [a.key, a.value]));
    return { get: (name) => envGet(env, name) ?? args.get(name) };
  }

  /** The exec's environment: image env, then build args (not shadowed, not proxies), then proxies. */
  execEnv(proxies: ReadonlyMap<string, string>): { env: string[]; proxyEnv: string[] } {
    let env = [...this.env];
    if (envGet(env, 'PATH') === undefined) env.push(`PATH=${DEFAULT_PATH}`);
    for (const a of this.args) {
      if (a.value === undefined || PROXY_ARGS.has(a.key) || envGet(env, a.key) !== undefined) continue;
      env.push(`${a.key}=${a.value}`);
    }
    const proxyEnv: string[] = [];
    for (const [k, v] of proxies) {
      if (envGet(env, k) !== undefined) continue;
      env = [...env, `${k}=${v}`];
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
