// docker build's flags for what every RUN step sees: --add-host and --ulimit.

import { isIP } from 'node:net';
import { KilnError } from '../util/errors.js';
import type { ExtraHost } from '../graph/ops.js';
import type { Ulimit } from '../worker/types.js';

/**
 * The address `host-gateway` stands for. RUN steps share the host's network unless told
 * otherwise, so the host is reached on its own loopback address.
 */
const HOST_GATEWAY = '127.0.0.1';

/** `NAME:IP` or `NAME=IP`, as docker build's --add-host; an IPv6 address may be in brackets. */
export function parseAddHosts(values: string[]): ExtraHost[] {
  return values.map((v) => {
    const sep = /[=:]/.exec(v);
    const host = sep ? v.slice(0, sep.index) : '';
    let ip = sep ? v.slice(sep.index + 1) : '';
    if (/^\[.*\]$/.test(ip)) ip = ip.slice(1, -1);
    if (!host || /\s/.test(host)) throw new KilnError(`--add-host: expected NAME:IP, got "${v}"`, { exitCode: 2 });
    if (ip === 'host-gateway') ip = HOST_GATEWAY;
    if (isIP(ip) === 0) throw new KilnError(`--add-host ${host}: "${ip}" is not an IP address (or host-gateway)`, { exitCode: 2 });
    return { host, ip };
  });
}

/** Docker's names for the resource limits --ulimit may set. */
const ULIMIT_NAMES = new Set([
  'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime',
  'sigpending', 'stack',
]);

/** `NAME=SOFT[:HARD]`, -1 for unlimited, as docker build's --ulimit. A later one of a name wins. */
export function parseUlimits(values: string[]): Ulimit[] {
  const byName = new Map<string, Ulimit>();
  for (const v of values) {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(v);
    if (!m) throw new KilnError(`--ulimit: expected NAME=SOFT[:HARD], got "${v}"`, { exitCode: 2 });
    const name = m[1]!;
    if (!ULIMIT_NAMES.has(name)) {
      throw new KilnError(`--ulimit: unknown limit "${name}" (one of ${[...ULIMIT_NAMES].join(', ')})`, { exitCode: 2 });
    }
    const soft = limitValue(m[2]!, v);
    const hard = m[3] === undefined ? soft : limitValue(m[3], v);
    if (hard !== 'unlimited' && (soft === 'unlimited' || soft > hard)) {
      throw new KilnError(`--ulimit ${v}: the soft limit is above the hard limit`, { exitCode: 2 });
    }
    byName.set(name, { name, soft, hard });
  }
  return [...byName.values()];
}

function limitValue(s: string, whole: string): number | 'unlimited' {
  const n = Number(s);
  if (n === -1) return 'unlimited';
  if (n < 0 || !Number.isSafeInteger(n)) throw new KilnError(`--ulimit ${whole}: "${s}" is not a limit (a whole number, or -1 for unlimited)`, { exitCode: 2 });
  return n;
}
