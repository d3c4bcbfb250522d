// Words of a stage's instructions expanded with the stage's variables, and BuildKit's
// UndefinedVar check of the names they use that the stage never defined.

import type { SourceLocation } from '../graph/ops.js';
import type { Ctx, StageState } from './convert.js';
import { lint, lintMessages } from './lint.js';
import { closestName } from './lint-rules.js';
import { BUILDER_ARGS } from './scope.js';


/**
 * UndefinedVar for each name an expansion found unset, unless the stage declared it as an ARG
 * (an ARG without a value is declared, just empty).
 */
export function warnUndefinedVars(ctx: Ctx, st: StageState, unset: ReadonlySet<string>, loc: SourceLocation): void {
  if (unset.size === 0) return;
  const declared = new Set(st.scope.args.map((a) => a.key));
  for (const name of unset) {
    if (declared.has(name) || BUILDER_ARGS.has(name)) continue;
    ctx.warnings.push(lint('UndefinedVar', lintMessages.UndefinedVar(name, closestName(name, st.scope.definedNames())), loc));
  }
}

/** A word of the stage's instruction at `loc`, expanded with the variables the stage has now. */
export function expandInStage(ctx: Ctx, st: StageState, word: string, loc: SourceLocation): string {
  const r = ctx.expandWithMatches(word, st.scope.lookup(), loc);
  warnUndefinedVars(ctx, st, r.unmatched, loc);
  return r.result;
}
