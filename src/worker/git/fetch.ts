// Fetching a git reference with the host's git, as BuildKit's git source does: the ref is
// resolved to a commit with `git ls-remote` (the commit is what a cache key names), then that
// commit alone is fetched shallowly and checked out with its submodules. git runs as kiln's
// user with its own configuration, so the host's credential helpers and SSH keys apply; it
// never prompts (a CI job has no one to answer).

import { realpath, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { KilnError } from '../../util/errors.js';
import { childProcess } from '../../util/lazy-modules.js';
import { redactRemote, type GitRef } from './ref.js';

const FULL_COMMIT = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;

interface GitRun {
  stdout: string;
}

function git(args: string[], signal: AbortSignal | undefined, what: string): Promise<GitRun> {
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn('git', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '', SSH_ASKPASS: '', LC_ALL: 'C' },
      signal,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4096)));
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (signal?.aborted) reject(signal.reason instanceof Error ? signal.reason : err);
      else reject(new KilnError(err.code === 'ENOENT' ? `${what}: git is not installed (kiln runs the host's git for git sources)` : `${what}: ${err.message}`));
    });
    child.once('close', (code) => {
      if (code === 0) resolve({ stdout });
      else if (!signal?.aborted) {
        // git's own verdict (its last fatal: or error: line), else whatever it said last.
        const lines = stderr.split('\n').filter((l) => l.trim() !== '');
        reject(new KilnError(`${what}: ${lines.filter((l) => /^(fatal|error):/.test(l)).pop() ?? lines.pop() ?? `git exited with ${code}`}`));
      }
    });
  });
}

/** The commit `ref` names on the remote: a full commit as given, else the tag or branch of that name. */
export async function resolveCommit(ref: GitRef, signal?: AbortSignal): Promise<string> {
  const name = ref.ref ?? 'HEAD';
  if (FULL_COMMIT.test(name)) return name;
  const what = `git ${redactRemote(ref.remote)}`;
  const { stdout } = await git(['ls-remote', '--', ref.remote], signal, what);
  const refs = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [sha, refName] = line.split('\t');
    if (sha && refName) refs.set(refName, sha);
  }
  // git's own order for a short name: as written, then a tag (its commit), then a branch.
  const candidates = name.startsWith('refs/') || name === 'HEAD'
    ? [`${name}^{}`, name]
    : [`refs/tags/${name}^{}`, `refs/tags/${name}`, `refs/heads/${name}`, `refs/${name}`];
  for (const c of candidates) {
    const sha = refs.get(c);
    if (sha) return sha;
  }
  throw new KilnError(`${what}: no branch or tag named "${name}" (a commit must be written in full)`);
}

/**
 * Checks `commit` of the remote out into the empty folder `dir`, submodules included; its .git
 * folder goes unless `keepGitDir`.
 */
export async function checkout(ref: GitRef, commit: string, dir: string, opts: { keepGitDir: boolean; signal?: AbortSignal }): Promise<void> {
  const what = `git ${redactRemote(ref.remote)}`;
  const inDir = (args: string[]) => git(['-C', dir, ...args], opts.signal, what);
  await git(['init', '-q', dir], opts.signal, what);
  await inDir(['remote', 'add', 'origin', ref.remote]);
  try {
    await inDir(['fetch', '-q', '--depth=1', '--no-tags', 'origin', commit]);
  } catch {
    // A server that serves only what it advertises: the branch or tag by name, or, for a commit
    // (or HEAD), every branch and tag; the checkout below finds the commit among them.
    const named = ref.ref !== undefined && !FULL_COMMIT.test(ref.ref);
    await inDir(['fetch', '-q', '--no-tags', 'origin', ...(named ? [ref.ref!] : ['+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'])]);
  }
  await inDir(['-c', 'advice.detachedHead=false', 'checkout', '-q', commit]);
  await inDir(['submodule', 'update', '-q', '--init', '--recursive', '--depth=1']);
  if (opts.keepGitDir) return;
  // A submodule's .git is a file pointing into the top .git: both go.
  const { stdout } = await inDir(['submodule', 'foreach', '-q', '--recursive', 'echo "$displaypath"']);
  for (const sub of stdout.split('\n').filter(Boolean)) await rm(join(dir, sub, '.git'), { recursive: true, force: true });
  await rm(join(dir, '.git'), { recursive: true, force: true });
}

/**
 * The checkout's folder `subdir`, resolved: a symlink in the repository may not lead out of it
 * (to the host's folders). `where` starts each error message.
 */
export async function checkoutFolder(dir: string, subdir: string, where: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(join(dir, subdir));
  } catch {
    throw new KilnError(`${where}: the repository has no folder ${subdir}`);
  }
  const rel = relative(await realpath(dir), real);
  if (rel === '..' || rel.startsWith(`..${sep}`)) throw new KilnError(`${where}: ${subdir} is outside the repository`);
  if (!(await stat(real)).isDirectory()) throw new KilnError(`${where}: ${subdir} is not a folder`);
  return real;
}
