// The parser as the rest of kiln sees it: errors become KilnErrors naming FILE:LINE:COLUMN, and
// warnings (empty continuation lines, a foreign syntax directive) become diagnostics.

import { KilnError } from '../util/errors.js';
import type { Diagnostic } from '../graph/ops.js';
import { parseDockerfile, ParseError, findDirective, type ParseResult } from './parser/parser.js';

export interface CheckDirective {
  /** Lint rules to skip; `all` skips every rule. */
  skip: string[] | 'all';
  /** Lint warnings fail the build. */
  error: boolean;
}

export interface ParsedDockerfile extends ParseResult {
  fileName: string;
  diagnostics: Diagnostic[];
  check: CheckDirective;
}

/** Frontend images that mean "the standard Dockerfile syntax": kiln's own frontend implements it. */
const standardFrontend = /^(docker\.io\/)?docker\/dockerfile(-upstream)?(:[\w][\w.-]*)?(@sha256:[0-9a-f]{64})?$/;

/** Whether a frontend image reference (a syntax directive's, BUILDKIT_SYNTAX's) is one kiln stands in for. */
export function isStandardFrontend(ref: string): boolean {
  return standardFrontend.test(ref);
}

/** The value of a `# check=` directive, or why it is not one. */
function checkOptions(value: string | undefined): CheckDirective | string {
  const out: CheckDirective = { skip: [], error: false };
  if (!value) return out;
  for (const part of value.split(';')) {
    const [k, v = ''] = part.split('=', 2).map((s) => s.trim()) as [string, string?];
    if (k === 'skip') out.skip = v === 'all' ? 'all' : v.split(',').map((s) => s.trim()).filter(Boolean);
    else if (k === 'error') out.error = v === 'true';
    else if (k !== '') return `invalid check directive "${value}": unknown key "${k}"`;
  }
  return out;
}

export function parseCheckDirective(value: string | undefined, fileName: string, line: number): CheckDirective {
  const r = checkOptions(value);
  if (typeof r === 'string') throw new KilnError(r, { location: { file: fileName, line, column: 1 } });
  return r;
}

/** `--build-arg BUILDKIT_DOCKERFILE_CHECK=...`, which BuildKit takes instead of the directive. */
export function parseCheckBuildArg(value: string): CheckDirective {
  const r = checkOptions(value);
  if (typeof r === 'string') throw new KilnError(`--build-arg BUILDKIT_DOCKERFILE_CHECK: ${r}`, { exitCode: 2 });
  return r;
}

export function parseDockerfileText(text: string, fileName: string): ParsedDockerfile {
  let r: ParseResult;
  try {
    r = parseDockerfile(text);
  } catch (e) {
    if (e instanceof ParseError) throw new KilnError(e.reason, { location: { file: fileName, line: e.line, column: 1 } });
    throw e;
  }
  const loc = (line: number) => ({ file: fileName, line, endLine: line, column: 1 });
  const diagnostics: Diagnostic[] = r.warnings.map((w) => ({
    level: 'warning',
    message: `NoEmptyContinuation: ${w.short} (${w.detail})`,
    location: loc(w.line),
    rule: 'NoEmptyContinuation',
  }));
  const syntax = r.directives.get('syntax') ?? (() => {
    const f = findDirective('syntax', text);
    return f ? { value: f.value, line: f.line } : undefined;
  })();
  if (syntax) {
    const ref = syntax.value.split(/\s/)[0]!;
    if (!isStandardFrontend(ref)) {
      diagnostics.push({
        level: 'warning',
        message: `syntax directive names frontend image "${ref}": kiln ignores it and uses its built-in Dockerfile frontend`,
        location: loc(syntax.line),
        rule: 'SyntaxDirective',
      });
    }
  }
  const checkDirective = r.directives.get('check');
  const check = parseCheckDirective(checkDirective?.value, fileName, checkDirective?.line ?? 1);
  return { ...r, fileName, diagnostics, check };
}
