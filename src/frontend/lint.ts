// BuildKit's Dockerfile lint rules that kiln checks, and the `# check=skip=...;error=true`
// directive that silences them or turns them into errors.

import type { Diagnostic, SourceLocation } from '../graph/ops.js';
import { KilnError } from '../util/errors.js';
import type { CheckDirective } from './parse.js';
import { formatDiagnostic } from './diagnostics.js';
import { goQuote } from './gofmt.js';

/** ` (did you mean X?)` when there is a close name, as BuildKit appends it. */
const didYouMean = (suggestion: string | undefined) => (suggestion ? ` (did you mean ${suggestion}?)` : '');

export const lintMessages = {
  JSONArgsRecommended: (kw: string) => `JSON arguments recommended for ${kw} to prevent unintended behavior related to OS signals`,
  LegacyKeyValueFormat: (kw: string) => `"${kw} key=value" should be used instead of legacy "${kw} key value" format`,
  StageNameCasing: (name: string) => `Stage name '${name}' should be lowercase`,
  FromAsCasing: (from: string, as: string) => `'${as}' and '${from}' keywords' casing do not match`,
  WorkdirRelativePath: (p: string) => `Relative workdir "${p}" can have unexpected results if the base image changes`,
  ConsistentInstructionCasing: (kw: string, casing: 'lowercase' | 'uppercase') =>
    `Command '${kw}' should match the case of the command majority (${casing})`,
  ReservedStageName: (name: string) => `Stage name should not use the same name as reserved stage ${goQuote(name)}`,
  MaintainerDeprecated: () => 'Maintainer instruction is deprecated in favor of using label',
  UndefinedArgInFrom: (name: string, suggestion?: string) => `FROM argument '${name}' is not declared${didYouMean(suggestion)}`,
  UndefinedVar: (name: string, suggestion?: string) =>
    `Usage of undefined variable '$${name}'${didYouMean(suggestion === undefined ? undefined : `$${suggestion}`)}`,
  MultipleInstructionsDisallowed: (kw: string) =>
    `Multiple ${kw} instructions should not be used in the same stage because only the last one will be used`,
  RedundantTargetPlatform: (platform: string) =>
    `Setting platform to predefined ${platform} in FROM is redundant as this is the default behavior`,
  SecretsUsedInArgOrEnv: (kw: 'ARG' | 'ENV', key: string) => `Do not use ARG or ENV instructions for sensitive data (${kw} ${goQuote(key)})`,
  InvalidDefaultArgInFrom: (baseName: string) => `Default value for ARG ${baseName} results in empty or invalid base image name`,
  FromPlatformFlagConstDisallowed: (platform: string) => `FROM --platform flag should not use constant value ${goQuote(platform)}`,
  ExposeProtoCasing: (port: string) => `Defined protocol '${port}' in EXPOSE instruction should be lowercase`,
  InvalidBaseImagePlatform: (image: string, have: string, want: string) =>
    `Base image ${image} was pulled with platform "${have}", expected "${want}" for current build`,
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
