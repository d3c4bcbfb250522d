// Parser directives: `# escape=`, `# syntax=`, `# check=` comment lines at the very top.
// The first line that is not a directive (or names an unknown one) ends the block.

export type DirectiveName = 'escape' | 'syntax' | 'check';

export interface Directive {
  name: DirectiveName;
  value: string;
  /** 0-based line within the scanned text. */
  line: number;
}

const allNames: readonly DirectiveName[] = ['escape', 'syntax', 'check'];

export class DirectiveError extends Error {}

export class DirectiveParser {
  private done = false;
  private readonly seen = new Set<string>();
  private readonly re: RegExp;
  private line = 0;

  constructor(
    private readonly allowed: readonly DirectiveName[] = allNames,
    comment = '#',
    startLine = 0,
  ) {
    this.re = new RegExp(`^${comment}\\s*([a-zA-Z][a-zA-Z0-9]*)\\s*=\\s*(.+?)\\s*$`);
    this.line = startLine;
  }

  /** Feeds one line (newline removed); returns the directive it holds, if any. */
  parseLine(text: string): Directive | undefined {
    const line = this.line++;
    if (this.done) return undefined;
    const m = this.re.exec(text);
    if (!m) {
      this.done = true;
      return undefined;
    }
    const name = m[1]!.toLowerCase() as DirectiveName;
    if (!this.allowed.includes(name)) {
      this.done = true;
      return undefined;
    }
    if (this.seen.has(name)) throw new DirectiveError(`only one ${name} parser directive can be used`);
    this.seen.add(name);
    return { name, value: m[2]!, line };
  }

  parseAll(text: string): Directive[] {
    const out: Directive[] = [];
    for (const l of text.split('\n')) {
      const d = this.parseLine(l.replace(/\r$/, ''));
      if (d) out.push(d);
      if (this.done) break;
    }
    return out;
  }
}

export function stripBOM(s: string): string {
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

export interface FoundDirective {
  value: string;
  cmdline: string;
  /** 1-based */
  line: number;
}

/**
 * Finds one directive the way BuildKit's ParseDirective does: a JSON document `{"syntax": ...}`,
 * `//syntax=` comments (syntax only), or `#key=` comments, after an optional BOM and shebang.
 */
export function findDirective(key: DirectiveName, text: string): FoundDirective | undefined {
  let dt = stripBOM(text);
  let line = 0;
  if (dt.startsWith('#!')) {
    const nl = dt.indexOf('\n');
    dt = nl < 0 ? '' : dt.slice(nl + 1);
    line++;
  }
  try {
    const doc: unknown = JSON.parse(dt);
    if (doc && typeof doc === 'object' && !Array.isArray(doc)) {
      const v = (doc as Record<string, unknown>)[key];
      if (typeof v === 'string') return { value: v, cmdline: v, line: line + 1 };
    }
  } catch {
    // not a JSON document: try comment styles
  }
  const styles = key === 'syntax' ? ['//', '#'] : ['#'];
  for (const style of styles) {
    let found: Directive | undefined;
    try {
      found = new DirectiveParser([key], style, line).parseAll(dt).find((d) => d.name === key);
    } catch {
      continue; // a repeated directive is reported by the main parser, not here
    }
    if (found) {
      const ref = found.value.split(/\s/)[0]!;
      return { value: ref, cmdline: found.value, line: found.line + 1 };
    }
  }
  return undefined;
}
