// Checks of instruction values that are shared by the parser (literal values) and the converter
// (values after variable expansion).

/** Go's time.ParseDuration, in nanoseconds. */
export function parseGoDuration(s: string): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let rest = s;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest[0] === '-') sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw new Error(`time: invalid duration "${s}"`);
  let total = 0;
  const re = /^(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  while (rest.length) {
    const m = re.exec(rest);
    if (!m) {
      if (/^(\d+\.?\d*|\.\d+)$/.test(rest)) throw new Error(`time: missing unit in duration "${s}"`);
      throw new Error(`time: invalid duration "${s}"`);
    }
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return sign * Math.round(total);
}

const octal = /^[0-7]{1,4}$/;
const symbolic = /^[ugoa]*[-+=]([rwxXst]*|[ugo])([-+=]([rwxXst]*|[ugo]))*$/;

/** `--chmod`: octal (`755`, `0644`) or symbolic (`u+x,g-w`). Returns an error message or undefined. */
export function checkChmod(v: string): string | undefined {
  if (octal.test(v)) return undefined;
  if (v.split(',').every((c) => symbolic.test(c))) return undefined;
  return `invalid chmod value "${v}": expected octal (0755) or symbolic (u+x,g-w) mode`;
}

const port = /^(\d+)(?:-(\d+))?(?:\/([A-Za-z]+))?$/;

/**
 * `EXPOSE` item: `80`, `80/tcp`, `53/udp`, `8000-8010/tcp`, or docker run's `[IP:][HOSTPORT:]PORT`
 * (the container's PORT is what is exposed, as in BuildKit). Returns the normalized `port/proto` list.
 */
export function parseExposePort(spec: string): string[] {
  const v = spec.slice(spec.lastIndexOf(':') + 1);
  const m = port.exec(v);
  if (!m) throw new Error(`invalid port "${spec}": expected PORT[-PORT][/tcp|/udp|/sctp]`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new Error(`invalid protocol "${m[3]}" in port "${spec}": expected tcp, udp or sctp`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535) throw new Error(`invalid port "${spec}": ports go up to 65535`);
  if (hi < lo) throw new Error(`invalid port range "${spec}": end is below start`);
  const out: string[] = [];
  for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  return out;
}

const stageName = /^[a-z][a-z0-9-_.]*$/;
export function checkStageName(name: string): string | undefined {
  return stageName.test(name.toLowerCase())
    ? undefined
    : `invalid name for build stage: "${name}", name can't start with a number or contain symbols`;
}

export const networkModes = ['default', 'none', 'host'] as const;
export const securityModes = ['sandbox', 'insecure'] as const;

/** The part of a value the parser can check now: only values without `$` are final. */
export const isLiteral = (v: string) => !v.includes('$');

/** Splits `a=b,"c=d,e",f` the way Go's csv reader does (double quotes group). */
export function splitCsv(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cur += '"';
          i++;
        } else quoted = false;
      } else cur += c;
    } else if (c === '"' && cur === '') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) throw new Error(`unterminated quote in "${text}"`);
  out.push(cur);
  return out;
}

/** `USER[:GROUP]` of --chown and of the user WORKDIR creates folders for. */
export function parseChown(v: string): { user: string; group?: string } {
  const i = v.indexOf(':');
  return i < 0 ? { user: v } : { user: v.slice(0, i), group: v.slice(i + 1) };
}
