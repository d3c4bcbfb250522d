// BuildKit's build checks of FROM lines: the ARGs a base name or a --platform uses, and what
// they expand to. BuildKit makes them while it sets up the stage table, so every stage is
// checked, whether the target needs it or not.

import type { Diagnostic } from '../graph/ops.js';
import type { Platform } from '../image/types.js';
import type { ArgInstruction } from './instructions/types.js';
import type { StageSpec } from './instructions/parse.js';
import { ShellError, mapLookup, type EnvLookup, type ExpandResult, type ShellLex } from './shell/lex.js';
import { parseReference } from '../registry/reference.js';
import { parsePlatform } from '../registry/platform.js';
import { lint, lintMessages } from './lint.js';
import { closestName } from './lint-rules.js';

/** The global scope a FROM line is expanded in. */
export interface GlobalArgs {
  /** ARGs before the first FROM (build args applied) over the predefined platform args. */
  lookup: EnvLookup;
  /** Every name the global scope declares, ARGs first, then the predefined ones. */
  names: readonly string[];
  predefined: ReadonlyMap<string, string>;
  metaArgs: readonly ArgInstruction[];
}

/** Expansion for a check only: a word that does not expand fails the build elsewhere. */
function tryExpand(lex: ShellLex, word: string, env: EnvLookup): ExpandResult | undefined {
  try {
    return lex.processWordWithMatches(word, env);
  } catch (e) {
    if (e instanceof ShellError) return undefined;
    throw e;
  }
}

/** The global ARGs with their defaults only, as if no build arg was given. */
function defaultGlobalArgs(global: GlobalArgs, lex: ShellLex): EnvLookup | undefined {
  const values = new Map(global.predefined);
  const lookup = mapLookup(values);
  for (const a of global.metaArgs) {
    for (const arg of a.args) {
      if (arg.value === undefined) continue;
      const r = tryExpand(lex, arg.value, lookup);
      if (!r) return undefined;
      values.set(arg.key, r.result);
    }
  }
  return lookup;
}

function isImageName(name: string): boolean {
  try {
    parseReference(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * InvalidDefaultArgInFrom: a base name that, with the global ARGs' defaults alone, is not an
 * image name (`busybox:` from `FROM busybox:$VERSION` when VERSION has no default).
 */
function invalidDefaultArgWarnings(stages: readonly StageSpec[], global: GlobalArgs, lex: ShellLex): Diagnostic[] {
  const defaults = defaultGlobalArgs(global, lex);
  if (!defaults) return [];
  const out: Diagnostic[] = [];
  for (const s of stages) {
    const r = tryExpand(lex, s.from.image, defaults);
    // BuildKit gives up on the check at the first base name it cannot expand.
    if (!r) break;
    if (!isImageName(r.result)) out.push(lint('InvalidDefaultArgInFrom', lintMessages.InvalidDefaultArgInFrom(s.from.image), s.from.location));
  }
  return out;
}

function undefinedArgWarnings(r: ExpandResult, s: StageSpec, global: GlobalArgs): Diagnostic[] {
  const declared = new Set(global.names);
  return [...r.unmatched]
    .filter((name) => !declared.has(name))
    .map((name) => lint('UndefinedArgInFrom', lintMessages.UndefinedArgInFrom(name, closestName(name, global.names)), s.from.location));
}

/** `--platform=$TARGETPLATFORM` (alone) asks for what FROM does anyway. */
function isRedundantTargetPlatform(r: ExpandResult, global: GlobalArgs): boolean {
  return r.matched.size === 1 && r.unmatched.size === 0 && r.matched.has('TARGETPLATFORM') && r.result === global.lookup.get('TARGETPLATFORM');
}

function platformOf(text: string): Platform | undefined {
  try {
    return parsePlatform(text);
  } catch {
    return undefined;
  }
}

/**
 * A literal --platform pins the stage to one platform whatever the build asks for; a stage
 * whose name says which OS or architecture it is for is taken to mean it.
 */
function isUnexplainedConstantPlatform(r: ExpandResult, stageName: string): boolean {
  if (r.matched.size > 0 || r.unmatched.size > 0) return false;
  // Not a platform at all: the stage fails on it when it is built.
  const platform = platformOf(r.result);
  return platform !== undefined && !stageName.includes(platform.os) && !stageName.includes(platform.architecture);
}

function platformWarnings(s: StageSpec, global: GlobalArgs, lex: ShellLex): Diagnostic[] {
  const written = s.from.platform;
  if (!written) return [];
  const r = tryExpand(lex, written, global.lookup);
  if (!r) return [];
  const out = undefinedArgWarnings(r, s, global);
  if (isRedundantTargetPlatform(r, global)) out.push(lint('RedundantTargetPlatform', lintMessages.RedundantTargetPlatform(written), s.from.location));
  if (isUnexplainedConstantPlatform(r, s.from.stageName?.toLowerCase() ?? '')) {
    out.push(lint('FromPlatformFlagConstDisallowed', lintMessages.FromPlatformFlagConstDisallowed(r.result), s.from.location));
  }
  return out;
}

function stageFromWarnings(s: StageSpec, global: GlobalArgs, lex: ShellLex): Diagnostic[] {
  const base = tryExpand(lex, s.from.image, global.lookup);
  return [...(base ? undefinedArgWarnings(base, s, global) : []), ...platformWarnings(s, global, lex)];
}

/** Every FROM line's checks, in BuildKit's order. */
export function fromLineWarnings(stages: readonly StageSpec[], global: GlobalArgs, lex: ShellLex): Diagnostic[] {
  return [...invalidDefaultArgWarnings(stages, global, lex), ...stages.flatMap((s) => stageFromWarnings(s, global, lex))];
}
