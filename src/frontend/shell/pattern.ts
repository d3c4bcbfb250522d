// Shell patterns of `${v#p}`, `${v%p}`, `${v/p/r}` as regular expressions: `*` and `?` are
// wildcards, `\` escapes `*`, `?` and `\`; `\}` and `\/` are the delimiters escaped.

const quoteMeta = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

export function patternToRegex(pattern: string, greedy: boolean, anchored: boolean, global = false): RegExp {
  const cps = [...pattern];
  let out = anchored ? '^' : '';
  const star = greedy ? '[^]*' : '[^]*?';
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i]!;
    if (c === '*') out += star;
    else if (c === '?') out += '[^]';
    else if (c === '\\') {
      const n = cps[i + 1];
      if (n === '}' || n === '/') continue;
      i++;
      if (n !== '*' && n !== '?' && n !== '\\') throw new Error(`invalid escape '\\${n ?? ''}'`);
      out += '\\' + n;
    } else out += quoteMeta(c);
  }
  return new RegExp(out, global ? 'gu' : 'u');
}
