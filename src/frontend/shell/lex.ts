// Word expansion as BuildKit's Dockerfile shell lexer does it: `$v`, `${v...}` modifiers, quotes
// and escapes. Not a shell: no command substitution, no globbing, no arithmetic.

import { patternToRegex } from './pattern.js';

export interface EnvLookup {
  get(name: string): string | undefined;
}

export class ShellError extends Error {}

export interface LexOptions {
  escapeToken?: string;
  /** Keep quote characters in the output (used to find heredoc words). */
  rawQuotes?: boolean;
  /** Keep escape characters in the output. */
  rawEscapes?: boolean;
  /** Leave `$name` untouched when `name` is unset instead of expanding to "". */
  skipUnsetEnv?: boolean;
  /** Treat quotes as ordinary characters. */
  skipProcessQuotes?: boolean;
}

export interface ExpandResult {
  result: string;
  words: string[];
  /** Names looked up and set (even to ""). */
  matched: Set<string>;
  /** Names looked up but unset. */
  unmatched: Set<string>;
}

const EOF = -1;

function isSpace(c: number): boolean {
  return (c >= 9 && c <= 13) || c === 32 || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}
// ASCII first: these run for every character of every variable name.
const LETTER = /\p{L}/u;
const DIGIT = /\p{Nd}/u;
const isLetter = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c > 127 && LETTER.test(String.fromCodePoint(c)));
const isDigit = (c: number) => (c >= 48 && c <= 57) || (c > 127 && DIGIT.test(String.fromCodePoint(c)));

/** Splits expanded text into words the way an unquoted shell word list is split. */
class Words {
  word = '';
  words: string[] = [];
  inWord = false;
  addChar(c: number): void {
    if (isSpace(c)) {
      if (this.inWord && this.word.length) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else this.addRawChar(c);
  }
  addRawChar(c: number): void {
    this.word += String.fromCodePoint(c);
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch.codePointAt(0)!);
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  get(): string[] {
    if (this.word.length) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class Scanner {
  private pos = 0;
  constructor(private readonly cps: number[]) {}
  peek(): number {
    return this.pos < this.cps.length ? this.cps[this.pos]! : EOF;
  }
  next(): number {
    return this.pos < this.cps.length ? this.cps[this.pos++]! : EOF;
  }
}

const chr = (c: number) => (c === EOF ? '' : String.fromCodePoint(c));

class ShellWord {
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();
  private rawEscapes: boolean;
  private readonly esc: number;
  constructor(
    private readonly sc: Scanner,
    private readonly env: EnvLookup,
    private readonly opts: LexOptions,
  ) {
    this.rawEscapes = !!opts.rawEscapes;
    this.esc = (opts.escapeToken ?? '\\').codePointAt(0)!;
  }

  processStopOnAny(stops: number[], rawEscapes?: boolean): [string, string[]] {
    const saved = this.rawEscapes;
    if (rawEscapes !== undefined) this.rawEscapes = rawEscapes;
    try {
      return this.stopOnAny(stops);
    } finally {
      this.rawEscapes = saved;
    }
  }

  private stopOnAny(stops: number[]): [string, string[]] {
    let result = '';
    const words = new Words();
    while (this.sc.peek() !== EOF) {
      let ch = this.sc.peek();
      if (stops.includes(ch)) {
        this.sc.next();
        return [result, words.get()];
      }
      const special = ch === 36 /* $ */ || (!this.opts.skipProcessQuotes && (ch === 39 || ch === 34));
      if (special) {
        const tmp = ch === 36 ? this.processDollar() : ch === 39 ? this.processSingleQuote() : this.processDoubleQuote();
        result += tmp;
        if (ch === 36) words.addString(tmp);
        else words.addRawString(tmp);
        continue;
      }
      ch = this.sc.next();
      if (ch === this.esc) {
        if (this.rawEscapes) {
          words.addRawChar(ch);
          result += chr(ch);
        }
        ch = this.sc.next();
        if (ch === EOF) break;
        words.addRawChar(ch);
      } else {
        words.addChar(ch);
      }
      result += chr(ch);
    }
    if (stops.length) {
      throw new ShellError(`unexpected end of statement while looking for matching ${stops.map(chr).join('')}`);
    }
    return [result, words.get()];
  }

  private processSingleQuote(): string {
    let result = '';
    let ch = this.sc.next();
    if (this.opts.rawQuotes) result += chr(ch);
    for (;;) {
      ch = this.sc.next();
      if (ch === EOF) throw new ShellError('unexpected end of statement while looking for matching single-quote');
      if (ch === 39) {
        if (this.opts.rawQuotes) result += chr(ch);
        return result;
      }
      result += chr(ch);
    }
  }

  private processDoubleQuote(): string {
    let result = '';
    let ch = this.sc.next();
    if (this.opts.rawQuotes) result += chr(ch);
    for (;;) {
      const p = this.sc.peek();
      if (p === EOF) throw new ShellError('unexpected end of statement while looking for matching double-quote');
      if (p === 34) {
        ch = this.sc.next();
        if (this.opts.rawQuotes) result += chr(ch);
        return result;
      }
      if (p === 36) {
        result += this.processDollar();
        continue;
      }
      ch = this.sc.next();
      if (ch === this.esc) {
        if (this.rawEscapes) result += chr(ch);
        const n = this.sc.peek();
        if (n === EOF) continue;
        if (n === 34 || n === 36 || n === this.esc) ch = this.sc.next();
      }
      result += chr(ch);
    }
  }

  private getEnv(name: string): string | undefined {
    const v = this.env.get(name);
    if (v === undefined) this.unmatched.add(name);
    else this.matched.add(name);
    return v;
  }

  private processName(): string {
    let name = '';
    while (this.sc.peek() !== EOF) {
      const ch = this.sc.peek();
      if (name === '' && isDigit(ch)) {
        while (this.sc.peek() !== EOF && isDigit(this.sc.peek())) name += chr(this.sc.next());
        return name;
      }
      if (name === '' && '@*#?-$!0'.includes(chr(ch))) return chr(this.sc.next());
      if (!isLetter(ch) && !isDigit(ch) && ch !== 95) break;
      name += chr(this.sc.next());
    }
    return name;
  }

  private processDollar(): string {
    this.sc.next();
    if (this.sc.peek() !== 123 /* { */) {
      const name = this.processName();
      if (name === '') return '$';
      const v = this.getEnv(name);
      if (v === undefined && this.opts.skipUnsetEnv) return '$' + name;
      return v ?? '';
    }
    this.sc.next();
    const first = this.sc.peek();
    if (first === EOF) throw new ShellError("syntax error: missing '}'");
    if (first === 123 || first === 125 || first === 58) throw new ShellError('syntax error: bad substitution');
    const name = this.processName();
    let ch = this.sc.next();
    let chs = chr(ch);
    let nullIsUnset = false;
    if (ch === 125) {
      const v = this.getEnv(name);
      if (v === undefined && this.opts.skipUnsetEnv) return `\${${name}}`;
      return v ?? '';
    }
    if (ch === 58 /* : */) {
      nullIsUnset = true;
      ch = this.sc.next();
      chs += chr(ch);
      if (!'+-?#%'.includes(chr(ch)) || ch === EOF) {
        throw new ShellError(`unsupported modifier (${chs}) in substitution`);
      }
    }
    if (ch !== EOF && '+-?#%'.includes(chr(ch))) {
      const rawEsc = ch === 35 || ch === 37;
      if (nullIsUnset && rawEsc) throw new ShellError(`unsupported modifier (${chs}) in substitution`);
      let word: string;
      try {
        [word] = this.processStopOnAny([125], rawEsc);
      } catch (e) {
        if (this.sc.peek() === EOF) throw new ShellError("syntax error: missing '}'");
        throw e;
      }
      const value = this.getEnv(name);
      if (this.opts.skipUnsetEnv && value === undefined) return `\${${name}${chs}${word}}`;
      const unsetish = value === undefined || (nullIsUnset && value === '');
      switch (ch) {
        case 45: // -
          return unsetish ? word : value!;
        case 43: // +
          return unsetish ? '' : word;
        case 63: // ?
          if (value === undefined) throw new ShellError(`${name}: ${word || 'is not allowed to be unset'}`);
          if (nullIsUnset && value === '') throw new ShellError(`${name}: ${word || 'is not allowed to be empty'}`);
          return value;
        default: {
          let greedy = false;
          if (word.length > 0 && word[0] === chr(ch)) {
            greedy = true;
            word = word.slice(1);
          }
          return ch === 37 ? trimSuffix(word, value ?? '', greedy) : trimPrefix(word, value ?? '', greedy);
        }
      }
    }
    if (ch === 47 /* / */) {
      const all = this.sc.peek() === 47;
      if (all) this.sc.next();
      let pattern: string;
      let repl: string;
      try {
        [pattern] = this.processStopOnAny([47], true);
      } catch (e) {
        if (this.sc.peek() === EOF) throw new ShellError("syntax error: missing '/' in ${}");
        throw e;
      }
      try {
        [repl] = this.processStopOnAny([125], true);
      } catch (e) {
        if (this.sc.peek() === EOF) throw new ShellError("syntax error: missing '}'");
        throw e;
      }
      const value = this.getEnv(name);
      if (this.opts.skipUnsetEnv && value === undefined) return `\${${name}/${pattern}/${repl}}`;
      const re = compilePattern(pattern, true, false, all);
      const v = value ?? '';
      if (all) return v.replace(re, () => repl);
      const m = re.exec(v);
      return m ? v.slice(0, m.index) + repl + v.slice(m.index + m[0].length) : v;
    }
    throw new ShellError(`unsupported modifier (${chs}) in substitution`);
  }
}

function compilePattern(pattern: string, greedy: boolean, anchored: boolean, global = false): RegExp {
  try {
    return patternToRegex(pattern, greedy, anchored, global);
  } catch (e) {
    throw new ShellError(`invalid pattern (${pattern}) in substitution: ${(e as Error).message}`);
  }
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const m = compilePattern(pattern, greedy, true).exec(value);
  return m ? value.slice(m[0].length) : value;
}

/** Reverses a pattern but keeps each `\x` escape pair in order. */
function reversePattern(p: string): string {
  const cps = [...p];
  const parts: string[] = [];
  for (let i = 0; i < cps.length; ) {
    if (cps[i] === '\\' && i !== cps.length - 1) {
      parts.push(cps[i]! + cps[i + 1]!);
      i += 2;
    } else parts.push(cps[i++]!);
  }
  return parts.reverse().join('');
}
const reverse = (s: string) => [...s].reverse().join('');

// A regexp cannot find the shortest rightmost match, so both sides are reversed and the
// suffix becomes a prefix.
function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  return reverse(trimPrefix(reversePattern(pattern), reverse(value), greedy));
}

const plainWordCheck = /[$'"]/;
const spaceRun = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

export class ShellLex {
  constructor(private readonly opts: LexOptions = {}) {}

  private run(word: string, env: EnvLookup): ExpandResult {
    // Most words hold nothing to expand: skip the scanner (this is the frontend's hot path).
    const esc = this.opts.escapeToken ?? '\\';
    if (!plainWordCheck.test(word) && !word.includes(esc)) {
      return { result: word, words: word.split(spaceRun).filter((w) => w !== ''), matched: new Set(), unmatched: new Set() };
    }
    const sw = new ShellWord(new Scanner([...word].map((c) => c.codePointAt(0)!)), env, this.opts);
    try {
      const [result, words] = sw.processStopOnAny([]);
      return { result, words, matched: sw.matched, unmatched: sw.unmatched };
    } catch (e) {
      if (e instanceof ShellError) throw new ShellError(`failed to process "${word}": ${e.message}`);
      throw e;
    }
  }

  /** One word in, one string out. */
  processWord(word: string, env: EnvLookup): string {
    return this.run(word, env).result;
  }

  processWordWithMatches(word: string, env: EnvLookup): ExpandResult {
    return this.run(word, env);
  }

  /** A line in, the expanded words out (split on unquoted whitespace). */
  processWords(line: string, env: EnvLookup): string[] {
    return this.run(line, env).words;
  }
}

export const emptyEnv: EnvLookup = { get: () => undefined };

/** `KEY=VALUE` list lookup; the last entry for a key wins, an entry without `=` reads as "". */
export function envListLookup(list: readonly string[]): EnvLookup {
  return {
    get(name) {
      for (let i = list.length - 1; i >= 0; i--) {
        const e = list[i]!;
        const eq = e.indexOf('=');
        const k = eq < 0 ? e : e.slice(0, eq);
        if (k === name) return eq < 0 ? '' : e.slice(eq + 1);
      }
      return undefined;
    },
  };
}

export function mapLookup(m: ReadonlyMap<string, string>): EnvLookup {
  return { get: (n) => m.get(n) };
}

/** Windows targets: variable names are case-insensitive (`$pwd` finds `PWD`). */
export function caseInsensitiveLookup(m: ReadonlyMap<string, string>): EnvLookup {
  const lower = new Map<string, string>();
  for (const [k, v] of m) lower.set(k.toLowerCase(), v);
  return { get: (n) => lower.get(n.toLowerCase()) };
}
