// Finding heredoc words (`<<EOF`, `<<-'EOF'`, `3<<EOF`) in an instruction line.

import { ShellLex, emptyEnv, ShellError } from '../shell/lex.js';
import type { Heredoc } from './node.js';

export class HeredocError extends Error {}

const reHeredoc = /^(\d*)<<(-?)\s*([^<]*)$/;

/** A heredoc word; `undefined` when the word is not one. The body is filled in by the parser. */
export function parseHeredocWord(src: string): Omit<Heredoc, 'content'> | undefined {
  const m = reHeredoc.exec(src);
  if (!m) return undefined;
  const rest = m[3]!;
  if (rest.length === 0) return undefined;
  const lex = (rawQuotes: boolean) => new ShellLex({ skipUnsetEnv: true, rawQuotes });
  let words: string[];
  let raw: string[];
  try {
    words = lex(false).processWords(rest, emptyEnv);
    if (words.length !== 1) return undefined;
    raw = lex(true).processWords(rest, emptyEnv);
  } catch (e) {
    if (e instanceof ShellError) throw new HeredocError(e.message);
    throw e;
  }
  if (raw.length !== 1) throw new HeredocError(`internal lexing of heredoc produced inconsistent results: ${rest}`);
  const quotes = (s: string) => (s.match(/['"]/g) ?? []).length;
  // A quote anywhere in the word (lost in the unquoted reading) turns expansion off.
  return {
    name: words[0]!,
    expand: quotes(words[0]!) === quotes(raw[0]!),
    chomp: m[2] === '-',
    fileDescriptor: m[1] ? Number(m[1]) : 0,
  };
}

/** Every heredoc word of a line, in order. `<< EOF` (space after the operator) counts too. */
export function heredocsFromLine(line: string): Omit<Heredoc, 'content'>[] {
  let words: string[];
  try {
    words = new ShellLex({ rawQuotes: true, rawEscapes: true, skipUnsetEnv: true }).processWords(line, emptyEnv);
  } catch {
    words = [];
  }
  const docs: Omit<Heredoc, 'content'>[] = [];
  for (let i = 0; i < words.length; i++) {
    let word = words[i]!;
    if (/^\d*<<-?$/.test(word) && i + 1 < words.length) word = `${word} ${words[++i]!}`;
    const h = parseHeredocWord(word);
    if (h) docs.push(h);
  }
  return docs;
}

/** `<<-`: leading tabs of every body line go. */
export function chompHeredocContent(src: string): string {
  return src.replace(/^\t+/gm, '');
}
