// `kiln build --check`: the Dockerfile's build-check warnings, printed as buildx prints them
// (a count, then per warning its rule, link, message and the lines around it), and no build.

import type { Diagnostic } from '../graph/ops.js';

const RULE_DOCS = 'https://docs.docker.com/go/dockerfile/rule/';

/** `JSONArgsRecommended` -> `json-args-recommended`, the rule's page name. */
export function ruleSlug(rule: string): string {
  return rule.replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2').replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

/** The lines around a warning, the warning's own marked with >>>. */
function sourceExcerpt(lines: string[], file: string, start: number, end: number): string {
  // Two lines of context on either side for a one-line warning, one for a longer one.
  const context = start === end ? 2 : 1;
  const first = Math.max(1, start - context);
  const last = Math.min(lines.length, end + context);
  const out = [`${file}:${start}`, '--------------------'];
  for (let i = first; i <= last; i++) {
    const mark = i >= start && i <= end ? '>>>' : '   ';
    out.push(` ${String(i).padStart(3)} | ${mark} ${lines[i - 1]}`);
  }
  out.push('--------------------');
  return out.join('\n');
}

export function formatCheckReport(warnings: Diagnostic[], dockerfile: string): string {
  if (warnings.length === 0) return 'Check complete, no warnings found.\n';
  const lines = dockerfile.split('\n');
  const sorted = [...warnings].sort((a, b) => (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.rule ?? '').localeCompare(b.rule ?? ''));
  const count = warnings.length === 1 ? '1 warning has been found!' : `${warnings.length} warnings have been found!`;
  let out = `Check complete, ${count}\n`;
  for (const w of sorted) {
    const rule = w.rule ?? 'warning';
    const detail = w.message.startsWith(`${rule}: `) ? w.message.slice(rule.length + 2) : w.message;
    out += `\nWARNING: ${rule} - ${RULE_DOCS}${ruleSlug(rule)}/\n${detail}\n`;
    if (w.location) out += `${sourceExcerpt(lines, w.location.file, w.location.line, w.location.endLine || w.location.line)}\n`;
  }
  return out;
}
