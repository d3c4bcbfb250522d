// BuildKit's build checks that look at the Dockerfile as written: they run over every stage,
// needed for the target or not, because BuildKit runs them while parsing. Also the small
// predicates the per-instruction checks share (secret names, protocol casing, suggestions).

import type { Diagnostic } from '../graph/ops.js';
import type { Instruction } from './instructions/types.js';
import type { StageSpec } from './instructions/parse.js';
import { lint, lintMessages } from './lint.js';

/** The instruction keyword as written (`copy`, `Run`). */
export function writtenKeyword(ins: Instruction): string {
  return ins.original.split(/\s/, 1)[0]!;
}

const isLower = (s: string) => s === s.toLowerCase();
const isUpper = (s: string) => s === s.toUpperCase();

/** StageNameCasing, FromAsCasing and MaintainerDeprecated, in the order of the lines. */
function perInstructionWarnings(stages: readonly StageSpec[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const s of stages) {
    const from = s.from;
    if (from.stageName !== undefined && !isLower(from.stageName)) {
      out.push(lint('StageNameCasing', lintMessages.StageNameCasing(from.stageName), from.location));
    }
    const fromKw = writtenKeyword(from);
    if (from.asKeyword !== undefined && asCasingDiffers(fromKw, from.asKeyword)) {
      out.push(lint('FromAsCasing', lintMessages.FromAsCasing(fromKw, from.asKeyword), from.location));
    }
    for (const c of s.commands) {
      if (c.kind === 'maintainer') out.push(lint('MaintainerDeprecated', lintMessages.MaintainerDeprecated(), c.location));
    }
  }
  return out;
}

// A FROM of mixed case is ConsistentInstructionCasing's concern; AS is only held to a FROM that
// picked a case.
function asCasingDiffers(fromKw: string, asKw: string): boolean {
  if (isLower(fromKw)) return !isLower(asKw);
  if (isUpper(fromKw)) return !isUpper(asKw);
  return false;
}

/** Names BuildKit keeps for its own sources: a stage of that name would hide them. */
const reservedStageNames = new Set(['context', 'scratch']);

function reservedStageNameWarnings(stages: readonly StageSpec[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const s of stages) {
    // Stage names are compared as BuildKit stores them: lower-cased.
    const name = s.from.stageName?.toLowerCase();
    if (name !== undefined && reservedStageNames.has(name)) {
      out.push(lint('ReservedStageName', lintMessages.ReservedStageName(name), s.from.location));
    }
  }
  return out;
}

/**
 * ConsistentInstructionCasing: the keywords of the stages (ARGs before the first FROM are not
 * counted) vote lower or upper case; a tie goes to upper case. A keyword of mixed case never
 * matches the majority.
 */
function instructionCasingWarnings(stages: readonly StageSpec[]): Diagnostic[] {
  const keywords = stages.flatMap((s) => [s.from, ...s.commands].map((ins) => ({ kw: writtenKeyword(ins), ins })));
  let lower = 0;
  let upper = 0;
  for (const { kw } of keywords) {
    if (isLower(kw)) lower++;
    else if (isUpper(kw)) upper++;
  }
  const majority = lower > upper ? 'lowercase' : 'uppercase';
  const matches = majority === 'lowercase' ? isLower : isUpper;
  return keywords
    .filter(({ kw }) => !matches(kw))
    .map(({ kw, ins }) => lint('ConsistentInstructionCasing', lintMessages.ConsistentInstructionCasing(kw, majority), ins.location));
}

/** The checks BuildKit makes while parsing, over every stage, in its order. */
export function dockerfileWideWarnings(stages: readonly StageSpec[]): Diagnostic[] {
  return [...perInstructionWarnings(stages), ...reservedStageNameWarnings(stages), ...instructionCasingWarnings(stages)];
}

// A whole word of an ARG or ENV name (split on `_`) that usually names a secret, unless another
// word says it is public (`PUBLIC_KEY`).
const secretWord = /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const publicWord = /(?:_|^)public(?:_|$)/i;

export function looksLikeSecret(name: string): boolean {
  return secretWord.test(name) && !publicWord.test(name);
}

const protocols = new Set(['tcp', 'udp', 'sctp']);

/** An EXPOSE word (`[ip:][host:]port[/proto]`) whose protocol is valid but not lower case. */
export function hasUpperCaseProtocol(port: string): boolean {
  const containerPort = port.slice(port.lastIndexOf(':') + 1);
  const slash = containerPort.indexOf('/');
  if (slash <= 0) return false;
  const proto = containerPort.slice(slash + 1);
  return protocols.has(proto.toLowerCase()) && !isLower(proto);
}

/** Levenshtein distance over code points, every edit costing 1. */
function editDistance(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1)));
    }
    prev = row;
  }
  return prev[y.length]!;
}

/**
 * BuildKit's "did you mean": the first option closest to `name` within two edits. None when
 * `name` is itself an option (then the problem is not its spelling).
 */
export function closestName(name: string, options: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const option of options) {
    if (option === name) return undefined;
    const d = editDistance(name, option);
    if (d < bestDistance) {
      best = option;
      bestDistance = d;
    }
  }
  return best;
}
