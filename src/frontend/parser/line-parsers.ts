// Turns the text after an instruction keyword into argument nodes, per instruction, exactly as
// BuildKit's parser does (no quote removal, no expansion).

import { goTrimSpace, goTrimLeftSpace, isGoSpace } from './gostring.js';

export class LineParseError extends Error {}

export interface ParsedArgs {
  args: string[];
  json: boolean;
  /** ONBUILD: the nested instruction's line. */
  subLine?: string;
}

const reWhitespace = /[\t\v\f\r ]+/;
const none: ParsedArgs = { args: [], json: false };

export const NOT_STRING_ARRAY = 'when using JSON array syntax, arrays must be comprised of strings only';

/** Exec form: a JSON array of strings. `undefined` when the text is not a JSON array at all. */
export function parseJsonArray(text: string): string[] | undefined {
  const rest = goTrimLeftSpace(text);
  if (!rest.startsWith('[')) return undefined;
  // BuildKit decodes the first JSON value and ignores what follows it (Go's json.Decoder), so
  // `CMD ["app"] # comment` is the exec form ["app"].
  const first = firstJsonValue(rest);
  if (first === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(first);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  if (!parsed.every((x) => typeof x === 'string')) throw new LineParseError(NOT_STRING_ARRAY);
  return parsed as string[];
}

/** The text of the JSON array or object `text` starts with, up to its closing bracket; undefined if it never closes. */
function firstJsonValue(text: string): string | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth++;
    else if ((c === ']' || c === '}') && --depth === 0) return text.slice(0, i + 1);
  }
  return undefined;
}

function splitWhitespace(rest: string): ParsedArgs {
  if (rest === '') return none;
  return { args: rest.split(reWhitespace), json: false };
}

function maybeJson(rest: string): ParsedArgs {
  if (rest === '') return none;
  const arr = parseJsonArray(rest);
  if (arr) return { args: arr, json: true };
  return { args: [rest], json: false };
}

function maybeJsonToList(rest: string): ParsedArgs {
  const arr = parseJsonArray(rest);
  if (arr) return { args: arr, json: true };
  return splitWhitespace(rest);
}

function oneString(rest: string): ParsedArgs {
  return rest === '' ? none : { args: [rest], json: false };
}

/**
 * Splits on whitespace outside quotes; quotes and escapes stay in the words verbatim
 * (ARG, and the ENV/LABEL form check).
 */
export function parseWords(rest: string, escapeToken: string): string[] {
  // Indexes are UTF-16 units: every special character is ASCII, and a surrogate pair is copied
  // unit by unit, so nothing is split.
  const words: string[] = [];
  const chars = rest;
  let inWord = false;
  let inQuote = false;
  let quote = '';
  let word = '';
  let blankOK = false;
  for (let i = 0; i <= chars.length; i++) {
    const end = i === chars.length;
    let ch = end ? '' : chars[i]!;
    if (!inWord && !inQuote) {
      if (end) break;
      if (isGoSpace(ch)) continue;
      inWord = true;
    }
    if (end) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (!inQuote) {
      if (isGoSpace(ch)) {
        inWord = false;
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        inQuote = true;
      }
      if (ch === escapeToken) {
        if (i + 1 === chars.length) continue;
        word += ch;
        ch = chars[++i]!;
      }
      word += ch;
      continue;
    }
    if (ch === quote) inQuote = false;
    if (ch === escapeToken && quote !== "'") {
      if (i + 1 === chars.length) {
        inQuote = false;
        continue;
      }
      word += ch;
      ch = chars[++i]!;
    }
    word += ch;
  }
  return words;
}

function nameVal(rest: string, key: string, escapeToken: string): ParsedArgs {
  const words = parseWords(rest, escapeToken);
  if (words.length === 0) return none;
  if (!words[0]!.includes('=')) {
    const m = reWhitespace.exec(rest);
    if (!m) throw new LineParseError(`${key} must have two arguments`);
    return { args: [rest.slice(0, m.index), rest.slice(m.index + m[0].length), ''], json: false };
  }
  const args: string[] = [];
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq < 0) throw new LineParseError(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    args.push(w.slice(0, eq), w.slice(eq + 1), '=');
  }
  return { args, json: false };
}

function healthcheck(rest: string): ParsedArgs {
  const chars = rest;
  let sep = 0;
  while (sep < chars.length && !isGoSpace(chars[sep]!)) sep++;
  let next = sep;
  while (next < chars.length && isGoSpace(chars[next]!)) next++;
  if (sep === 0) return none;
  const cmd = maybeJson(rest.slice(next));
  return { args: [rest.slice(0, sep), ...cmd.args], json: cmd.json };
}

export function parseArgsFor(keyword: string, rest: string, escapeToken: string): ParsedArgs {
  switch (keyword) {
    case 'add':
    case 'copy':
    case 'volume':
      return maybeJsonToList(rest);
    case 'run':
    case 'cmd':
    case 'entrypoint':
    case 'shell':
      return maybeJson(rest);
    case 'from':
    case 'expose':
      return splitWhitespace(rest);
    case 'env':
      return nameVal(rest, 'ENV', escapeToken);
    case 'label':
      return nameVal(rest, 'LABEL', escapeToken);
    case 'arg': {
      const words = parseWords(rest, escapeToken);
      return { args: words, json: false };
    }
    case 'maintainer':
    case 'user':
    case 'workdir':
    case 'stopsignal':
      return oneString(rest);
    case 'healthcheck':
      return healthcheck(rest);
    case 'onbuild':
      return rest === '' ? none : { args: [], json: false, subLine: rest };
    default:
      // BuildKit keeps unknown instructions as an empty node; the instruction layer rejects them.
      return { args: [''], json: false };
  }
}

/**
 * Leading `--flag` words, with quotes removed and `\` escaping; a bare `--` ends them.
 * Returns the remaining text and the flags.
 */
export function extractBuilderFlags(line: string): [string, string[]] {
  const words: string[] = [];
  const chars = line; // UTF-16 indexes, as in parseWords
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  const restFrom = (i: number) => line.slice(i);
  for (let i = 0; i <= chars.length; i++) {
    const end = i === chars.length;
    let ch = end ? '' : chars[i]!;
    if (phase === 'spaces') {
      if (end) break;
      if (isGoSpace(ch)) continue;
      if (ch !== '-' || i + 1 === chars.length || chars[i + 1] !== '-') return [restFrom(i), words];
      phase = 'word';
    }
    if (end) {
      if (word !== '--' && (blankOK || word.length > 0)) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isGoSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return [restFrom(i), words];
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        continue;
      }
      if (ch === '\\') {
        if (i + 1 === chars.length) continue;
        ch = chars[++i]!;
      }
      word += ch;
      continue;
    }
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    if (ch === '\\') {
      if (i + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      ch = chars[++i]!;
    }
    word += ch;
  }
  return ['', words];
}

/** Keyword, flags and argument text of a logical line. */
export function splitCommand(line: string): { keyword: string; flags: string[]; rest: string } {
  const trimmed = goTrimSpace(line);
  const m = reWhitespace.exec(trimmed);
  if (!m) return { keyword: trimmed, flags: [], rest: '' };
  const [rest, flags] = extractBuilderFlags(trimmed.slice(m.index + m[0].length));
  return { keyword: trimmed.slice(0, m.index), flags, rest: goTrimSpace(rest) };
}
