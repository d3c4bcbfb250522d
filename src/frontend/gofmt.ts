// Go fmt renderings that BuildKit writes into image history (`%q` of lists, `%v` of maps, durations).

import { goQuote, goQuoteList } from './parser/gostring.js';

export { goQuote, goQuoteList };

/** `%v` of a []string: `[a b]`. */
export const goList = (l: readonly string[]) => `[${l.join(' ')}]`;

/** `%v` of a map[string]struct{}: keys sorted, `map[80/tcp:{} 443/tcp:{}]`. */
export const goSetMap = (keys: Iterable<string>) => `map[${[...new Set(keys)].sort().map((k) => `${k}:{}`).join(' ')}]`;

/** Go's time.Duration.String() for nanoseconds. */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const neg = ns < 0;
  let u = Math.abs(ns);
  let out: string;
  if (u < 1e9) {
    const [unit, div] = u < 1e3 ? ['ns', 1] : u < 1e6 ? ['µs', 1e3] : ['ms', 1e6];
    out = trimFrac(u / div!) + unit;
  } else {
    const h = Math.floor(u / 3600e9);
    u -= h * 3600e9;
    const m = Math.floor(u / 60e9);
    u -= m * 60e9;
    const s = trimFrac(u / 1e9) + 's';
    out = h > 0 ? `${h}h${m}m${s}` : m > 0 ? `${m}m${s}` : s;
  }
  return (neg ? '-' : '') + out;
}
const trimFrac = (n: number) => String(Number(n.toFixed(9)));

/** Go's `%q` of an int: a quoted rune literal (`'\x03'`). */
export function goQuoteRune(n: number): string {
  const named: Record<number, string> = { 7: '\\a', 8: '\\b', 12: '\\f', 10: '\\n', 13: '\\r', 9: '\\t', 11: '\\v', 39: "\\'", 92: '\\\\' };
  if (named[n]) return `'${named[n]}'`;
  if (n >= 0x20 && n < 0x7f) return `'${String.fromCharCode(n)}'`;
  if (n < 0x80) return `'\\x${n.toString(16).padStart(2, '0')}'`;
  if (n < 0x10000) return `'${String.fromCodePoint(n)}'`;
  return `'\\U${n.toString(16).padStart(8, '0')}'`;
}
