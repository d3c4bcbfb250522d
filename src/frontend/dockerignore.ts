// .dockerignore semantics of moby/patternmatcher: patterns in order, `!` re-includes, the last
// matching pattern wins, a pattern matching a parent directory matches everything below it.

import { readFile } from 'node:fs/promises';
import { join, dirname, basename } from 'node:path';
import { KilnError } from '../util/errors.js';
import { goClean, goDir } from './gopath.js';
import { goTrimSpace } from './parser/gostring.js';

export class PatternError extends Error {}
const badPattern = () => new PatternError('syntax error in pattern');

type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

export class Pattern {
  readonly exclusion: boolean;
  readonly cleaned: string;
  readonly dirs: string[];
  private matchType?: MatchType;
  private re?: RegExp;

  constructor(cleaned: string, exclusion: boolean) {
    this.cleaned = cleaned;
    this.exclusion = exclusion;
    this.dirs = cleaned.split('/');
  }

  /** The pattern as written in the ignore file (with its `!`). */
  toString(): string {
    return (this.exclusion ? '!' : '') + this.cleaned;
  }

  /** Compiles the pattern now: a pattern the reference's regexp would refuse throws PatternError. */
  validate(): void {
    if (!this.matchType) this.compile();
  }

  private compile(): void {
    const cps = [...this.cleaned];
    let re = '^';
    let type: MatchType = 'exact';
    let inClass = false;
    for (let i = 0; i < cps.length; i++) {
      const ch = cps[i]!;
      if (ch === '*') {
        if (cps[i + 1] === '*') {
          const atStart = i === 0;
          i++;
          if (cps[i + 1] === '/') i++; // `**/` is `**`
          if (i + 1 >= cps.length) {
            if (type === 'exact') type = 'prefix';
            else {
              re += '.*';
              type = 'regexp';
            }
          } else {
            re += '(.*/)?';
            type = 'regexp';
          }
          if (atStart) type = 'suffix';
        } else {
          re += '[^/]*';
          type = 'regexp';
        }
      } else if (ch === '?') {
        re += '[^/]';
        type = 'regexp';
      } else if ('.+()|{}$'.includes(ch)) {
        re += '\\' + ch;
      } else if (ch === '\\') {
        if (i + 1 < cps.length) {
          const esc = goRegexpEscape(cps, i + 1, inClass);
          re += esc.re;
          i = esc.end - 1;
          type = 'regexp';
        } else re += '\\\\';
      } else if (ch === '[' || ch === ']') {
        // The reference hands brackets to Go's regexp as they are; there a `]` outside a class
        // is a literal, which JavaScript's Unicode mode wants escaped.
        re += ch === ']' && !inClass ? '\\]' : ch;
        inClass = ch === '[';
        type = 'regexp';
      } else re += ch;
    }
    if (type === 'regexp') {
      try {
        this.re = new RegExp(re + '$', 'u');
      } catch {
        throw badPattern();
      }
    }
    this.matchType = type;
  }

  match(path: string): boolean {
    if (!this.matchType) this.compile();
    switch (this.matchType!) {
      case 'exact':
        return path === this.cleaned;
      case 'prefix':
        return path.startsWith(this.cleaned.slice(0, -2));
      case 'suffix': {
        const suffix = this.cleaned.slice(2);
        if (path.endsWith(suffix)) return true;
        return suffix.startsWith('/') && path === suffix.slice(1);
      }
      case 'regexp':
        return this.re!.test(path);
    }
  }
}

const literal = (c: string) => `\\u{${c.codePointAt(0)!.toString(16)}}`;
const isOctal = (c: string | undefined) => c !== undefined && c >= '0' && c <= '7';
const isHex = (c: string | undefined) => c !== undefined && /^[0-9a-fA-F]$/.test(c);
/** RE2's \\s: space, tab, newline, form feed, carriage return (JavaScript's also has \\v and Unicode spaces). */
const RE2_SPACE = '\\t\\n\\f\\r ';
/** One-letter Unicode general categories and those of two letters, as \\p{...} takes them unqualified. */
const GENERAL_CATEGORY = /^(?:[CLMNPSZ]|C[cfnos]|L[lmotu]|M[cen]|N[dlo]|P[cdefios]|S[ckmo]|Z[lps])$/;

/**
 * The escape at `cps[at]` (just after a backslash) as Go's regexp reads it, written for
 * JavaScript's: patternmatcher passes `\\c` to Go's regexp as it is, so `\\#` is a literal
 * `#`, `\\d` a digit, `\\t` a tab, and `\\q` a syntax error (BuildKit's behaviour, checked).
 */
function goRegexpEscape(cps: string[], at: number, inClass: boolean): { re: string; end: number } {
  const c = cps[at]!;
  const code = c.codePointAt(0)!;
  if (code < 0x80 && !/[0-9A-Za-z]/.test(c)) return { re: literal(c), end: at + 1 };
  switch (c) {
    case 'a':
      return { re: '\\x07', end: at + 1 };
    case 'f': case 'n': case 'r': case 't': case 'v':
    case 'd': case 'D': case 'w': case 'W':
      return { re: '\\' + c, end: at + 1 };
    case 's':
      return { re: inClass ? RE2_SPACE : `[${RE2_SPACE}]`, end: at + 1 };
    case 'S':
      if (inClass) break;
      return { re: `[^${RE2_SPACE}]`, end: at + 1 };
    case 'b': case 'B':
      if (inClass) break;
      return { re: '\\' + c, end: at + 1 };
    case 'A':
      if (inClass) break;
      return { re: '^', end: at + 1 };
    case 'z':
      if (inClass) break;
      return { re: '$', end: at + 1 };
    case 'Q': {
      if (inClass) break;
      let end = at + 1;
      let text = '';
      while (end < cps.length && !(cps[end] === '\\' && cps[end + 1] === 'E')) text += literal(cps[end++]!);
      return { re: text, end: end < cps.length ? end + 2 : end };
    }
    case 'x': {
      if (cps[at + 1] === '{') {
        let end = at + 2;
        while (isHex(cps[end])) end++;
        if (end === at + 2 || cps[end] !== '}') break;
        const value = parseInt(cps.slice(at + 2, end).join(''), 16);
        if (value > 0x10ffff) break;
        return { re: `\\u{${value.toString(16)}}`, end: end + 1 };
      }
      if (!isHex(cps[at + 1]) || !isHex(cps[at + 2])) break;
      return { re: `\\u{${cps[at + 1]}${cps[at + 2]}}`, end: at + 3 };
    }
    case 'p': case 'P': {
      let name: string;
      let end: number;
      if (cps[at + 1] === '{') {
        end = at + 2;
        while (end < cps.length && cps[end] !== '}') end++;
        if (end >= cps.length) break;
        name = cps.slice(at + 2, end).join('');
        end++;
      } else {
        if (at + 1 >= cps.length) break;
        name = cps[at + 1]!;
        end = at + 2;
      }
      let negated = c === 'P';
      if (name.startsWith('^')) {
        negated = !negated;
        name = name.slice(1);
      }
      const property = name === 'Any' ? 'Any' : GENERAL_CATEGORY.test(name) ? name : `Script=${name}`;
      return { re: `\\${negated ? 'P' : 'p'}{${property}}`, end };
    }
    default:
      if (!isOctal(c)) break;
      // \\1 to \\7 alone would be back-references, which Go's regexp refuses; \\0 and \\1NN are octal.
      if (c !== '0' && !isOctal(cps[at + 1])) break;
      let end = at + 1;
      while (end < at + 3 && isOctal(cps[end])) end++;
      return { re: literal(String.fromCodePoint(parseInt(cps.slice(at, end).join(''), 8))), end };
  }
  throw badPattern();
}

/** Syntax check of Go's filepath.Match, which the reference runs on every pattern. */
function checkGlobSyntax(p: string): void {
  const cps = [...p];
  let i = 0;
  const esc = (): string => {
    let c = cps[i];
    if (c === undefined || c === '-' || c === ']') throw badPattern();
    if (c === '\\') {
      i++;
      c = cps[i];
      if (c === undefined) throw badPattern();
    }
    i++;
    if (i >= cps.length) throw badPattern();
    return c;
  };
  while (i < cps.length) {
    const c = cps[i]!;
    if (c === '\\') {
      i += 2;
      if (i > cps.length) throw badPattern();
    } else if (c === '[') {
      i++;
      if (cps[i] === '^') i++;
      let n = 0;
      for (;;) {
        if (i < cps.length && cps[i] === ']' && n > 0) {
          i++;
          break;
        }
        esc();
        if (cps[i] === '-') {
          i++;
          esc();
        }
        n++;
      }
    } else i++;
  }
}

export interface MatchInfo {
  parentMatched: boolean[];
}

export class PatternMatcher {
  readonly patterns: Pattern[] = [];
  readonly exclusions: boolean = false;

  constructor(patterns: readonly string[]) {
    for (let p of patterns) {
      p = goTrimSpace(p);
      if (p === '') continue;
      p = goClean(p);
      let exclusion = false;
      if (p[0] === '!') {
        if (p.length === 1) throw new PatternError('illegal exclusion pattern: "!"');
        exclusion = true;
        p = p.slice(1);
        this.exclusions = true;
      }
      checkGlobSyntax(p);
      this.patterns.push(new Pattern(p, exclusion));
    }
  }

  private parentMatches(pattern: Pattern, file: string): boolean {
    const parent = goDir(file);
    if (parent === '.') return false;
    const dirs = parent.split('/');
    for (let i = 0; i < dirs.length; i++) {
      if (pattern.match(dirs.slice(0, i + 1).join('/'))) return true;
    }
    return false;
  }

  /** Whether `file` (slash-separated, relative) is excluded, checking its parents too. */
  matchesOrParentMatches(file: string): boolean {
    let matched = false;
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue;
      const m = p.match(file) || this.parentMatches(p, file);
      if (m) matched = !p.exclusion;
    }
    return matched;
  }

  /**
   * The walker's form: the parent directory's per-pattern results are reused instead of
   * re-matching every ancestor. Pass `undefined` for a top-level entry.
   */
  matchesUsingParentResults(file: string, parent?: MatchInfo): { excluded: boolean; info: MatchInfo } {
    const pm = parent?.parentMatched;
    if (pm && pm.length !== 0 && pm.length !== this.patterns.length) throw new Error('wrong number of values in parentMatched');
    const info: MatchInfo = { parentMatched: new Array<boolean>(this.patterns.length).fill(false) };
    let matched = false;
    this.patterns.forEach((p, i) => {
      let m = pm && pm.length ? pm[i]! : false;
      if (!m) {
        if (p.exclusion !== matched) return;
        m = p.match(file);
        if (!m && !(pm && pm.length)) m = this.parentMatches(p, file);
      }
      info.parentMatched[i] = m;
      if (m) matched = !p.exclusion;
    });
    return { excluded: matched, info };
  }

  /** The deprecated Matches: a parent is compared only at the pattern's own depth. */
  legacyMatches(file: string): boolean {
    let matched = false;
    const parent = goDir(file);
    const parentDirs = parent.split('/');
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue;
      let m = p.match(file);
      if (!m && parent !== '.' && p.dirs.length <= parentDirs.length) {
        m = p.match(parentDirs.slice(0, p.dirs.length).join('/'));
      }
      if (m) matched = !p.exclusion;
    }
    return matched;
  }
}

/** Package-level Matches(file, patterns) of the reference. */
export function legacyMatches(file: string, patterns: readonly string[]): boolean {
  const pm = new PatternMatcher(patterns);
  const f = goClean(file);
  if (f === '.') return false;
  return pm.legacyMatches(f);
}

/** An ignore file's body as patterns: comments and blanks dropped, paths cleaned, leading `/` removed. */
export function parseIgnoreFile(text: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  if (lines.length && lines.at(-1) === '') lines.pop();
  lines.forEach((raw, i) => {
    let line = raw.replace(/\r$/, '');
    if (i === 0 && line.startsWith('\ufeff')) line = line.slice(1);
    if (line.startsWith('#')) return;
    let p = goTrimSpace(line);
    if (p === '') return;
    const invert = p[0] === '!';
    if (invert) p = goTrimSpace(p.slice(1));
    if (p.length > 0) {
      p = goClean(p);
      if (p.length > 1 && p[0] === '/') p = p.slice(1);
    }
    out.push(invert ? '!' + p : p);
  });
  return out;
}

/**
 * The ignore patterns for a build: `<Dockerfile>.dockerignore` beside the Dockerfile wins over
 * `.dockerignore` at the context root. Neither existing means no patterns.
 */
export async function readIgnorePatterns(contextDir: string, dockerfilePath?: string): Promise<{ patterns: string[]; file?: string }> {
  const candidates = [
    ...(dockerfilePath ? [join(dirname(dockerfilePath), basename(dockerfilePath) + '.dockerignore')] : []),
    join(contextDir, '.dockerignore'),
  ];
  for (const file of candidates) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new KilnError(`cannot read ${file}: ${(e as Error).message}`);
    }
    const patterns = parseIgnoreFile(text);
    let pm: PatternMatcher;
    try {
      pm = new PatternMatcher(patterns);
    } catch (e) {
      throw new KilnError(`${file}: ${(e as Error).message}`);
    }
    // BuildKit fails on such a pattern only when a path reaches it; here, before the build.
    for (const p of pm.patterns) {
      try {
        p.validate();
      } catch (e) {
        throw new KilnError(`${file}: ${(e as Error).message}: ${JSON.stringify(p.toString())}`);
      }
    }
    return { patterns, file };
  }
  return { patterns: [] };
}
