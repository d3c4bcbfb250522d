// Path patterns of two dialects:
// - COPY/ADD sources use Go's filepath.Match, one path component at a time (`*`, `?`, `[a-z]`,
//   `[^a]`, `\` escapes; nothing crosses a `/`).
// - --exclude and .dockerignore use the ignore-file dialect: `**` spans any number of
//   components, `!` re-includes, and a pattern that matches a folder excludes what is below it.

import { KilnError } from '../../util/errors.js';
import { PatternMatcher } from '../../frontend/dockerignore.js';

export function hasWildcard(s: string): boolean {
  return /[*?[\\]/.test(s);
}

/** Translates one filepath.Match pattern (no separators inside) to a regular expression body. */
function componentRegex(pattern: string, starStar: boolean): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') {
      if (starStar && pattern[i + 1] === '*') {
        // `**/` matches zero or more whole components; a bare `**` anything at all.
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else out += '.*';
      } else out += '[^/]*';
    } else if (ch === '?') out += '[^/]';
    else if (ch === '\\') {
      i++;
      if (i >= pattern.length) throw new KilnError(`bad pattern ${JSON.stringify(pattern)}: trailing backslash`);
      out += escapeRe(pattern[i]!);
    } else if (ch === '[') {
      const end = classEnd(pattern, i);
      if (end < 0) throw new KilnError(`bad pattern ${JSON.stringify(pattern)}: unclosed [`);
      let body = pattern.slice(i + 1, end);
      let neg = false;
      if (body.startsWith('^')) {
        neg = true;
        body = body.slice(1);
      }
      if (body === '') throw new KilnError(`bad pattern ${JSON.stringify(pattern)}: empty character class`);
      const cls = body.replace(/\\(.)/g, '$1').replace(/[\]\\^]/g, (m) => '\\' + m);
      out += neg ? `[^/${cls}]` : `[${cls}]`;
      i = end;
    } else out += escapeRe(ch);
  }
  return out;
}

function classEnd(p: string, start: number): number {
  let i = start + 1;
  if (p[i] === '^') i++;
  for (; i < p.length; i++) {
    if (p[i] === '\\') i++;
    else if (p[i] === ']' && i > start + 1) return i;
  }
  return -1;
}

function escapeRe(ch: string): string {
  return ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

const goCache = new Map<string, RegExp>();

/** Go's filepath.Match for one name. */
export function goMatch(pattern: string, name: string): boolean {
  let re = goCache.get(pattern);
  if (!re) {
    re = new RegExp(`^${componentRegex(pattern, false)}$`, 's');
    goCache.set(pattern, re);
  }
  return re.test(name);
}

/** Checks a pattern's syntax up front so a bad one fails with its text, not a stack. */
export function validatePattern(pattern: string): void {
  componentRegex(pattern, true);
}

/** Cleans a path the way Go's path.Clean does for relative paths. */
export function cleanRelative(p: string): string {
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else out.push('..');
    } else out.push(c);
  }
  return out.join('/');
}

/**
 * Ignore-file matching (.dockerignore and --exclude share moby/patternmatcher's rules; the
 * frontend owns the implementation).
 */
export class IgnoreMatcher {
  private readonly pm: PatternMatcher;

  constructor(patterns: readonly string[]) {
    try {
      this.pm = new PatternMatcher(patterns);
    } catch (err) {
      throw new KilnError(`bad exclude pattern in ${JSON.stringify(patterns)}: ${(err as Error).message}`);
    }
  }

  get empty(): boolean {
    return this.pm.patterns.length === 0;
  }

  /** Some pattern re-includes (`!`): an excluded folder may still hold included files. */
  get hasNegations(): boolean {
    return this.pm.exclusions;
  }

  /** True when `rel` (relative, clean, `/`-separated) is excluded. */
  matches(rel: string): boolean {
    if (rel === '' || this.empty) return false;
    return this.pm.matchesOrParentMatches(rel);
  }
}
