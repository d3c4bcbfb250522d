// ADD <git ref>: the commit the ref names is what the step's key holds; running the step checks
// that commit out in the store's tmp/ and copies its files (or a folder's) into the destination,
// as a COPY from a folder would: owned by root unless --chown, modes as checked out.

import type { CopyAction, GitAction } from '../../graph/ops.js';
import type { WorkerContext } from '../types.js';
import { KilnError } from '../../util/errors.js';
import { removeTree } from '../../store/store.js';
import { checkout, checkoutFolder, resolveCommit, type FetchOptions } from '../git/fetch.js';
import { redactRemote, type GitRef } from '../git/ref.js';
import type { DiffWriter } from './diff-writer.js';
import { openSource } from './sources.js';
import { planCopy, resolveCopyOptions, runCopyPlan } from './copy.js';

/** Within one kiln process a ref is asked of its remote once: every step naming it sees one commit. */
const commits = new Map<string, Promise<string>>();

const refOf = (a: GitAction): GitRef => ({ remote: a.remote, ...(a.ref ? { ref: a.ref } : {}) });

/** The build's secrets and --ssh agents reach a private repository. */
const fetchOptions = (ctx: WorkerContext): FetchOptions => ({ signal: ctx.signal, secrets: ctx.secrets, sshAgents: ctx.sshAgents });

/** The commit the action's ref names, checked against ADD --checksum. */
export async function gitCommit(action: GitAction, ctx: WorkerContext): Promise<string> {
  const key = `${action.remote}#${action.ref ?? ''}`;
  let p = commits.get(key);
  if (!p) {
    p = resolveCommit(refOf(action), fetchOptions(ctx));
    commits.set(key, p);
    p.catch(() => commits.delete(key));
  }
  const commit = await p;
  if (action.checksum && !commit.startsWith(action.checksum)) {
    throw new KilnError(`ADD ${redactRemote(action.remote)}${action.ref ? `#${action.ref}` : ''}: checksum mismatch: --checksum is ${action.checksum} but the ref is at commit ${commit}`);
  }
  return commit;
}

export async function runGit(action: GitAction, ctx: WorkerContext, w: DiffWriter): Promise<void> {
  const commit = await gitCommit(action, ctx);
  const dir = await ctx.store.tempDir('git');
  try {
    await checkout(refOf(action), commit, dir, { ...fetchOptions(ctx), keepGitDir: action.keepGitDir });
    const root = action.subdir ? await checkoutFolder(dir, action.subdir, `ADD ${redactRemote(action.remote)}#${action.ref ?? ''}:${action.subdir}`) : dir;
    const copy: CopyAction = {
      action: 'copy', from: 0, src: ['.'], dest: action.dest.endsWith('/') ? action.dest : `${action.dest}/`,
      ...(action.chown ? { chown: action.chown } : {}), ...(action.chmod !== undefined ? { chmod: action.chmod } : {}),
      link: false, parents: false, exclude: [], add: false,
    };
    const src = openSource({ kind: 'context', dir: root, excludePatterns: [] }, ctx.store, 0);
    const plan = await planCopy(copy, src, w);
    const opts = await resolveCopyOptions(copy, true, w, ctx, () => ctx.store.tempDir('file-extract'));
    await runCopyPlan(plan, w, opts);
    await w.settle(); // copies finish in batches: the checkout must outlive them
  } finally {
    await removeTree(dir);
  }
}
