// BuildKit's Dockerfile lint rules that kiln checks, and the `# check=skip=...;error=true`
// directive that silences them or turns them into errors.

import type { Diagnostic, SourceLocation } from '../graph/ops.js';
import { KilnError } from '../util/errors.js';
import type { CheckDirective } from './parse.js';
import { formatDiagnostic } from './diagnostics.js';

export const lintMessages = {
  JSONArgsRecommended: (kw: string) => `JSON arguments recommended for ${kw} to prevent unintended behavior related to OS signals`,
  LegacyKeyValueFormat: (kw: string) => `"${kw} key=value" should be used instead of legacy "${kw} key value" format`,
  StageNameCasing: (name: string) => `Stage name '${name}' should be lowercase`,
  FromAsCasing: (from: string, as: string) => `'${as}' and '${from}' keywords' casing do not match`,
  WorkdirRelativePath: (p: string) => `Relative workdir "${p}" can have unexpected results if the base image changes`,
};

export function lint(rule: keyof typeof lintMessages | string, message: string, location?: SourceLocation): Diagnostic {
  return { level: 'warning', rule, message: `${rule}: ${message}`, ...(location ? { location } : {}) };
}

/** Whether a diagnostic is one of BuildKit's build checks (what `# check=` and `--check` act on). */
export function isLintRule(d: Diagnostic): boolean {
  return (d.rule !== undefined && d.rule in lintMessages) || d.rule === 'NoEmptyContinuation';
}

/** Drops skipped rules; with `error=true`, any remaining lint warning fails the build. */
export function applyCheckDirective(diags: Diagnostic[], check: CheckDirective): Diagnostic[] {
  const kept = diags.filter((d) => !(isLintRule(d) && (check.skip === 'all' || check.skip.includes(d.rule!))));
  const failing = kept.filter(isLintRule);
  if (check.error && failing.length) {
    throw new KilnError(`lint violations (# check=error=true):\n${failing.map(formatDiagnostic).join('\n')}`, {
      ...(failing[0]!.location ? { location: { file: failing[0]!.location.file, line: failing[0]!.location.line, column: failing[0]!.location.column } } : {}),
    });
  }
  return kept;
}
