// BuildKit's Dockerfile parser: physical lines -> instructions (continuations joined, comments
// and directives dropped, heredoc bodies attached), each split into flags and argument nodes.

import { DirectiveParser, DirectiveError, stripBOM, findDirective } from './directives.js';
import { HeredocError, heredocsFromLine } from './heredoc.js';
import { LineParseError, parseArgsFor, splitCommand } from './line-parsers.js';
import { goTrimLeftSpace } from './gostring.js';
import type { Heredoc, Node } from './node.js';

export const MAX_LINE_BYTES = 65535;

export interface ParseWarning {
  short: string;
  detail: string;
  url?: string;
  /** 1-based */
  line: number;
}

export interface ParseResult {
  nodes: Node[];
  escapeToken: string;
  warnings: ParseWarning[];
  /** Parser directives found at the top (lower-case names). */
  directives: Map<string, { value: string; line: number }>;
  /** First and last line of the instructions (1-based). */
  startLine: number;
  endLine: number;
}

/** A parse failure at a line range (1-based); the message is BuildKit's wording. */
export class ParseError extends Error {
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly endLine = line,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

const heredocKeywords = new Set(['add', 'copy', 'run']);

/** Splits into physical lines, each keeping its line ending (as BuildKit's scanner does). */
function physicalLines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) {
      if (start < text.length) out.push(text.slice(start));
      return out;
    }
    out.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
}

function trimNewline(s: string): string {
  let e = s.length;
  while (e > 0 && (s.charCodeAt(e - 1) === 10 || s.charCodeAt(e - 1) === 13)) e--;
  return e === s.length ? s : s.slice(0, e);
}
const isComment = (s: string) => goTrimLeftSpace(trimNewline(s)).startsWith('#');
const escapeRe = (c: string) => c.replace(/[\\`]/g, '\\$&');

export function parseDockerfile(input: string): ParseResult {
  const text = stripBOM(input);
  const lines = physicalLines(text);
  const directiveParser = new DirectiveParser();
  const directives = new Map<string, { value: string; line: number }>();
  let escapeToken = '\\';
  let continuation = /(^|[^\\])\\[ \t]*$/;
  const warnings: ParseWarning[] = [];
  const nodes: Node[] = [];
  let comments: string[] = [];
  let li = 0; // next physical line to read
  let current = 0; // 1-based number of the last line read

  const read = (): string | undefined => {
    if (li >= lines.length) return undefined;
    const l = lines[li++]!;
    current++;
    // A UTF-8 byte count is only needed when the line could be that long.
    if (l.length * 3 > MAX_LINE_BYTES && Buffer.byteLength(trimNewline(l)) > MAX_LINE_BYTES) {
      throw new ParseError(`dockerfile line greater than max allowed size of ${MAX_LINE_BYTES}`, current);
    }
    return l;
  };
  const processLine = (raw: string, stripLeft: boolean): string => {
    let tok = trimNewline(raw);
    if (stripLeft) tok = goTrimLeftSpace(tok);
    try {
      const d = directiveParser.parseLine(tok);
      if (d) {
        directives.set(d.name, { value: d.value, line: current });
        if (d.name === 'escape') {
          if (d.value !== '`' && d.value !== '\\') {
            throw new ParseError(`invalid escape token '${d.value}' does not match \` or \\`, current);
          }
          escapeToken = d.value;
          const e = escapeRe(escapeToken);
          continuation = new RegExp(`(^|[^${e}])${e}[ \\t]*$`);
        }
      }
    } catch (e) {
      if (e instanceof DirectiveError) throw new ParseError(e.message, current);
      throw e;
    }
    return isComment(tok) ? '' : tok;
  };
  const trimContinuation = (line: string): [string, boolean] => {
    if (continuation.test(line)) return [line.replace(continuation, '$1'), false];
    return [line, true];
  };

  for (let raw = read(); raw !== undefined; raw = read()) {
    if (isComment(raw)) {
      const c = trimNewline(goTrimLeftSpace(raw)).slice(1).trim();
      comments = c === '' ? [] : [...comments, c];
    }
    const first = processLine(raw, true);
    const startLine = current;
    let [line, done] = trimContinuation(first);
    if (done && line === '') continue;
    let emptyContinuation = false;
    while (!done) {
      const next = read();
      if (next === undefined) break;
      const cont = processLine(next, false);
      if (isComment(next)) continue;
      if (goTrimLeftSpace(trimNewline(cont)) === '') {
        emptyContinuation = true;
        continue;
      }
      let piece: string;
      [piece, done] = trimContinuation(cont);
      line += piece;
    }
    if (emptyContinuation) {
      warnings.push({
        short: `Empty continuation line found in: ${line}`,
        detail: 'Empty continuation lines will become errors in a future release',
        url: 'https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/',
        line: current,
      });
    }
    let node: Node;
    try {
      node = nodeFromLine(line, escapeToken, comments, startLine);
    } catch (e) {
      if (e instanceof LineParseError) throw new ParseError(e.message, startLine, current);
      throw e;
    }
    const target = node.sub ?? node;
    if (heredocKeywords.has(target.keyword.toLowerCase()) && !target.json && line.includes('<<')) {
      let found;
      try {
        found = heredocsFromLine(line);
      } catch (e) {
        if (e instanceof HeredocError) throw new ParseError(e.message, startLine, current);
        throw e;
      }
      for (const h of found) {
        let content = '';
        let terminated = false;
        for (let body = read(); body !== undefined; body = read()) {
          let candidate = trimNewline(body);
          if (h.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === h.name) {
            terminated = true;
            break;
          }
          content += body.endsWith('\n') ? body : body + '\n';
        }
        if (!terminated) throw new ParseError('unterminated heredoc', startLine, current);
        const doc: Heredoc = { ...h, content };
        target.heredocs.push(doc);
      }
    }
    node.endLine = current;
    if (node.sub) node.sub.endLine = current;
    nodes.push(node);
    comments = [];
  }
  if (nodes.length === 0) throw new ParseError('file with no instructions', current);
  return {
    nodes,
    escapeToken,
    warnings,
    directives,
    startLine: nodes[0]!.startLine,
    endLine: nodes.at(-1)!.endLine,
  };
}

function nodeFromLine(line: string, escapeToken: string, comments: string[], startLine: number): Node {
  const { keyword, flags, rest } = splitCommand(line);
  const parsed = parseArgsFor(keyword.toLowerCase(), rest, escapeToken);
  const node: Node = {
    keyword,
    original: line,
    flags,
    args: parsed.args,
    json: parsed.json,
    heredocs: [],
    startLine,
    endLine: startLine,
    comments,
  };
  if (parsed.subLine !== undefined) node.sub = nodeFromLine(parsed.subLine, escapeToken, [], startLine);
  return node;
}

export { findDirective };
