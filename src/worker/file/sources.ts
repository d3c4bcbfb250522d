// Which files a COPY/ADD reads: its source patterns expanded against the build context or a
// stage/image filesystem, then the selected trees with .dockerignore and --exclude applied.
// runFile copies exactly these trees and fileOpContentKey hashes exactly these trees, so the
// cache key can never disagree with what lands in the layer.

import { readlink } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import type { CopyAction } from '../../graph/ops.js';
import type { ResolvedInput } from '../types.js';
import type { Store } from '../../store/store.js';
import { RootfsView, type ViewEntry } from '../../store/rootfs-view.js';
import { KilnError } from '../../util/errors.js';
import { cleanRelative, goMatch, hasWildcard, IgnoreMatcher, validatePattern } from './patterns.js';

export interface SourceRoot {
  view: RootfsView;
  /** Set for the build context (a host folder): its ignore rules and folder. */
  context?: { dir: string; ignore: IgnoreMatcher };
  /** For messages: `the build context` or `the source stage/image`. */
  label: string;
}

/**
 * The view of an input. With a step memo, one view per input for the whole step: its cache key,
 * --explain's record and the copy then read the tree from disk once, not three times (the view
 * remembers every lookup).
 */
export function openSource(input: ResolvedInput | undefined, store: Store, index: number, memo?: WeakMap<object, unknown>): SourceRoot {
  if (!input) throw new Error(`file op: input ${index} is missing`);
  let root = memo?.get(input) as SourceRoot | undefined;
  if (!root) {
    root = newSourceRoot(input, store);
    memo?.set(input, root);
  }
  return root;
}

function newSourceRoot(input: ResolvedInput, store: Store): SourceRoot {
  if (input.kind === 'context') {
    // A store inside the context (kiln's default cache/ when building the checkout itself) is
    // never part of it: a COPY would otherwise read its own staging folder while writing it.
    const storeRel = relative(input.dir, store.root);
    const inside = storeRel !== '' && !storeRel.startsWith('..') && !isAbsolute(storeRel);
    const patterns = inside ? [...input.excludePatterns, storeRel.split(sep).join('/')] : input.excludePatterns;
    return {
      view: new RootfsView([input.dir]),
      context: { dir: input.dir, ignore: new IgnoreMatcher(patterns) },
      label: 'the build context',
    };
  }
  return { view: RootfsView.forSnapshots(store, input.layers), label: 'the source filesystem' };
}

export interface SourceMatch {
  /** The source as written in the instruction. */
  pattern: string;
  /** The matched path relative to the source root, as matched (symlinks not resolved). */
  rel: string;
  /** The name it gets at the destination (the last component as matched). */
  name: string;
  /** With --parents: the part of `rel` kept under the destination (after the `./` pivot). */
  keep: string;
  /** The matched entry, a final symlink followed (inside the root). */
  entry: ViewEntry;
}

export interface SelectedNode {
  entry: ViewEntry;
  /** Path below the match, `''` for the match itself. */
  sub: string;
  name: string;
  children: SelectedNode[];
}

/** Shared by every selected node that is not a folder (a walk keeps thousands of them). */
const NO_CHILDREN: SelectedNode[] = [];

function relOf(path: string): string {
  return path === '/' ? '' : path.slice(1);
}

function ignored(root: SourceRoot, entry: ViewEntry): boolean {
  return root.context !== undefined && root.context.ignore.matches(relOf(entry.path));
}

async function follow(root: SourceRoot, e: ViewEntry): Promise<ViewEntry | undefined> {
  if (e.type !== 'symlink') return e;
  return (await root.view.locate(e.path, true)).entry;
}

/** Splits `a/./b/c` at the `./` pivot (--parents): ['a', 'a/b/c']. */
function splitPivot(src: string): { pivot: string; path: string } {
  const s = src.replace(/^\/+/, '');
  const i = s.lastIndexOf('/./');
  if (i < 0) return { pivot: '', path: s };
  return { pivot: cleanRelative(s.slice(0, i)), path: s.slice(0, i) + '/' + s.slice(i + 3) };
}

async function globMatches(
  root: SourceRoot,
  comps: string[],
  parents: boolean,
  /** A wildcard's final match that is a link to nothing: BuildKit fails the step rather than leave it out. */
  dangling: (rel: string, link: ViewEntry) => Promise<never>,
): Promise<Array<{ rel: string; entry: ViewEntry }>> {
  let cur: Array<{ rel: string; entry: ViewEntry }> = [{ rel: '', entry: await root.view.root() }];
  for (const [at, comp] of comps.entries()) {
    const next: Array<{ rel: string; entry: ViewEntry }> = [];
    for (const c of cur) {
      if (c.entry.type !== 'dir') continue;
      if (parents && comp === '**') {
        // Any depth, including none: every directory below, then the next component matches.
        const stack = [c];
        while (stack.length > 0) {
          const d = stack.pop()!;
          next.push(d);
          for (const e of await root.view.readdir(d.entry)) {
            if (e.type !== 'dir' || ignored(root, e)) continue;
            stack.push({ rel: d.rel === '' ? baseName(e.path) : `${d.rel}/${baseName(e.path)}`, entry: e });
          }
        }
        continue;
      }
      if (!hasWildcard(comp)) {
        const e = await root.view.child(c.entry, comp);
        const f = e && (await follow(root, e));
        if (f && !ignored(root, f)) next.push({ rel: c.rel === '' ? comp : `${c.rel}/${comp}`, entry: f });
        continue;
      }
      for (const e of await root.view.readdir(c.entry)) {
        const name = baseName(e.path);
        if (!goMatch(comp, name)) continue;
        const rel = c.rel === '' ? name : `${c.rel}/${name}`;
        const f = await follow(root, e);
        if (!f && at === comps.length - 1 && !ignored(root, e)) await dangling(rel, e);
        if (f && !ignored(root, f)) next.push({ rel, entry: f });
      }
    }
    cur = next;
  }
  const seen = new Set<string>();
  return cur.filter((m) => (seen.has(m.rel) ? false : (seen.add(m.rel), true))).sort((a, b) => cmp(a.rel, b.rel));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function baseName(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/**
 * Expands every source of the action. A path that is not found is an error naming it; a
 * wildcard that matches nothing adds nothing, as in BuildKit (`COPY requirements.* ./` copies
 * what there is), so a COPY whose every source is such a wildcard copies nothing.
 */
export async function expandSources(action: CopyAction, root: SourceRoot): Promise<SourceMatch[]> {
  const out: SourceMatch[] = [];
  for (const src of action.src) {
    const { pivot, path } = action.parents ? splitPivot(src) : { pivot: '', path: src.replace(/^\/+/, '') };
    const cleaned = cleanRelative(path);
    if (root.context && (cleaned === '..' || cleaned.startsWith('../'))) {
      throw new KilnError(`source ${JSON.stringify(src)} is outside the build context`);
    }
    // Outside the context, `..` can climb no higher than the root (as in BuildKit).
    const rel = cleaned.split('/').filter((c) => c !== '..').join('/');
    const comps = rel === '' ? [] : rel.split('/');
    let found: Array<{ rel: string; entry: ViewEntry }>;
    if (comps.some(hasWildcard)) {
      for (const c of comps) validatePattern(c);
      found = await globMatches(root, comps, action.parents, async (match, link) => {
        const target = await readlink(link.host).catch(() => '?');
        throw new KilnError(`source pattern ${JSON.stringify(src)} matched ${JSON.stringify(match)}, a symbolic link to ${JSON.stringify(target)}, which is not found in ${root.label}`);
      });
    } else {
      let entry: ViewEntry | undefined;
      try {
        entry = (await root.view.locate(rel, true)).entry;
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
      }
      if (!entry || (ignored(root, entry) && !(entry.type === 'dir' && root.context?.ignore.hasNegations))) {
        const why = entry ? ' (it is excluded by .dockerignore)' : '';
        throw new KilnError(`source ${JSON.stringify(src)} not found in ${root.label}${why}`);
      }
      found = [{ rel, entry }];
    }
    for (const f of found) {
      const keep = pivot === '' ? f.rel : f.rel.startsWith(pivot + '/') ? f.rel.slice(pivot.length + 1) : f.rel;
      out.push({ pattern: src, rel: f.rel, name: f.rel === '' ? '' : baseName(f.rel), keep, entry: f.entry });
    }
  }
  return out;
}

/**
 * The tree to copy for one match, with .dockerignore (context paths) and --exclude (paths
 * relative to the copied source; a lone file is tested by its name) applied. Undefined when
 * the match itself is excluded. `pruned` collects the folders skipped whole (paths below the
 * match): a rebuild's quick check (tree-memo.ts) need not look inside them either.
 */
export async function selectTree(root: SourceRoot, match: SourceMatch, exclude: IgnoreMatcher, pruned?: string[]): Promise<SelectedNode | undefined> {
  if (match.entry.type !== 'dir') {
    if (!exclude.empty && exclude.matches(match.name)) return undefined;
    return { entry: match.entry, sub: '', name: match.name, children: [] };
  }
  // Synchronous (the view's lookups are): a promise per file was most of a big walk's garbage.
  const walk = (entry: ViewEntry, sub: string): SelectedNode | undefined => {
    const contextIgnored = sub !== '' && ignored(root, entry);
    const excluded = sub !== '' && !exclude.empty && exclude.matches(sub);
    const node: SelectedNode = { entry, sub, name: sub === '' ? match.name : baseName(sub), children: entry.type === 'dir' ? [] : NO_CHILDREN };
    if (entry.type === 'dir') {
      const mayReinclude = (contextIgnored && root.context!.ignore.hasNegations) || (excluded && exclude.hasNegations);
      if ((contextIgnored || excluded) && !mayReinclude) {
        pruned?.push(sub);
        return undefined;
      }
      for (const e of root.view.readdirSync(entry)) {
        const n = baseName(e.path);
        const child = walk(e, sub === '' ? n : `${sub}/${n}`);
        if (child) node.children.push(child);
      }
      // A folder excluded itself is still made when something inside it is re-included.
      if ((contextIgnored || excluded) && node.children.length === 0) return undefined;
      return node;
    }
    return contextIgnored || excluded ? undefined : node;
  };
  return walk(match.entry, '');
}

/** Flattens a selected tree in pre-order. */
export function* flatten(node: SelectedNode): Generator<SelectedNode> {
  yield node;
  for (const c of node.children) yield* flatten(c);
}
