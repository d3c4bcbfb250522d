// The parser's view of one instruction: nothing expanded or unquoted yet.

import { goQuote, goQuoteList } from './gostring.js';

export interface Heredoc {
  name: string;
  /** Raw body: every line up to the terminator, each with its newline. */
  content: string;
  expand: boolean;
  chomp: boolean;
  fileDescriptor: number;
}

export interface Node {
  /** The keyword exactly as written (`Run`). */
  keyword: string;
  /** The logical line (continuations joined), after leading whitespace. */
  original: string;
  flags: string[];
  /** Argument nodes; for ONBUILD, `sub` holds the nested instruction instead. */
  args: string[];
  sub?: Node;
  /** The arguments came from a JSON array (exec form). */
  json: boolean;
  heredocs: Heredoc[];
  /** 1-based physical lines, heredoc bodies included. */
  startLine: number;
  endLine: number;
  /** Comment lines directly above the instruction. */
  comments: string[];
}

/** BuildKit's Node.Dump() for one instruction, without the surrounding parentheses. */
export function dumpNode(n: Node): string {
  let s = n.keyword.toLowerCase();
  if (n.flags.length) s += ' ' + goQuoteList(n.flags);
  if (n.sub) s += ' (' + dumpNode(n.sub) + ')';
  for (const a of n.args) s += ' ' + goQuote(a);
  return s.trim();
}

/** The whole file as BuildKit dumps it: one `(instruction)` per line, no final newline. */
export function dumpAst(nodes: readonly Node[]): string {
  return nodes.map((n) => '(' + dumpNode(n) + ')').join('\n');
}
