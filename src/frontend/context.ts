// Enumerating the build context after the ignore rules, as BuildKit's context transfer sees it.

import { lstat, readdir } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '../util/errors.js';
import { PatternMatcher, type MatchInfo, type Pattern } from './dockerignore.js';

export type ContextEntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface ContextEntry {
  /** Slash-separated, relative to the context root, no leading `./`. */
  path: string;
  type: ContextEntryType;
  stat: Stats;
}

function typeOf(st: Stats): ContextEntryType {
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFile()) return 'file';
  return 'other';
}

const globChars = /[*?[\\]/;

/**
 * Whether some `!` pattern could re-include a path below the excluded directory `dir`: only then
 * must the walker descend into it. A literal exclusion can be checked exactly; a wildcard one is
 * assumed to match.
 */
function mayReinclude(exclusions: readonly Pattern[], dir: string): boolean {
  return exclusions.some((p) => globChars.test(p.cleaned) || p.cleaned.startsWith(dir + '/'));
}

/** Every path of the context that survives the ignore patterns, sorted by path. */
export async function listContext(dir: string, patterns: string[]): Promise<ContextEntry[]> {
  let pm: PatternMatcher;
  try {
    pm = new PatternMatcher(patterns);
  } catch (e) {
    throw new KilnError(`ignore patterns: ${(e as Error).message}`);
  }
  const exclusions = pm.patterns.filter((p) => p.exclusion);
  const out: ContextEntry[] = [];
  const listed = new Set<string>();
  const pendingParents = new Map<string, ContextEntry>();

  const include = (e: ContextEntry) => {
    // An included path inside an excluded directory brings its parent directories along.
    for (let i = e.path.indexOf('/'); i >= 0; i = e.path.indexOf('/', i + 1)) {
      const parent = e.path.slice(0, i);
      const pe = pendingParents.get(parent);
      if (pe && !listed.has(parent)) {
        listed.add(parent);
        out.push(pe);
      }
    }
    listed.add(e.path);
    out.push(e);
  };

  const walk = async (abs: string, rel: string, parentInfo: MatchInfo | undefined) => {
    let names: string[];
    try {
      names = await readdir(abs);
    } catch (e) {
      throw new KilnError(`cannot read context folder ${abs}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    names.sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(abs, name);
      const st = await lstat(full);
      const entry: ContextEntry = { path, type: typeOf(st), stat: st };
      let excluded = false;
      let info: MatchInfo | undefined;
      if (pm.patterns.length) {
        try {
          ({ excluded, info } = pm.matchesUsingParentResults(path, parentInfo));
        } catch (e) {
          throw new KilnError(`ignore patterns: ${(e as Error).message}`);
        }
      }
      if (!excluded) include(entry);
      if (entry.type !== 'dir') continue;
      if (excluded) {
        if (!mayReinclude(exclusions, path)) continue;
        pendingParents.set(path, entry);
      }
      await walk(full, path, info);
    }
  };
  await walk(dir, '', undefined);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
