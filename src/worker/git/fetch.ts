// Fetching a git reference with the host's git, as BuildKit's git source does: the ref is
// resolved to a commit with `git ls-remote` (the commit is what a cache key names), then that
// commit alone is fetched shallowly and checked out with its submodules. git runs as kiln's
// user with its own configuration, so the host's credential helpers and SSH keys apply, and with
// the build's GIT_AUTH_TOKEN or GIT_AUTH_HEADER secret for an http(s) remote (auth.ts). Given
// `--ssh default`, git's ssh uses that agent (a read-only one kiln serves, for key files), for
// the remote and its submodules. It never prompts (a CI job has no one to answer): git runs in a
// session of its own, without a terminal that ssh could ask for a passphrase or a host key on.

import { mkdtemp, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { KilnError } from '../../util/errors.js';
import { childProcess } from '../../util/lazy-modules.js';
import { redactRemote, type GitRef } from './ref.js';
import { serveAgent, type AgentServer } from '../ssh/agent.js';
import type { AgentSource } from '../ssh/source.js';
import { AUTH_TOKEN_SECRET, envWithAuth, gitAuthFor, isHttpRemote, redactAuth, type GitAuth } from './auth.js';

const FULL_COMMIT = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;

interface GitRun {
  stdout: string;
}

interface GitCall {
  signal: AbortSignal | undefined;
  /** Starts every error message: `git <remote>`. */
  what: string;
  auth: GitAuth | undefined;
  /** The remote is http(s), where the GIT_AUTH_* secrets apply. */
  http: boolean;
  /** As written, for the host a message names. */
  remote: string;
  /** SSH_AUTH_SOCK for git's ssh: the --ssh default agent, when given. */
  agentSocket: string | undefined;
}

/**
 * What resolveCommit and checkout take: the build's `secrets` (GIT_AUTH_TOKEN, GIT_AUTH_HEADER)
 * and `--ssh` agents, of which git uses `default`, as BuildKit's git source does.
 */
export interface FetchOptions {
  signal?: AbortSignal;
  secrets?: ReadonlyMap<string, Buffer>;
  sshAgents?: ReadonlyMap<string, AgentSource>;
}

/** git's answers to a request it was not allowed: an HTTP 401 or 403, or a prompt it may not show. */
const REFUSED = /Authentication failed|could not read (Username|Password)|terminal prompts disabled|requested URL returned error: 40[13]/i;

/** Why git failed, in its own words (its last fatal: or error: line, else its last line), and what to do about a refusal. */
function failure(lines: string[], code: number | null, call: GitCall): string {
  const ssh = sshFailure(lines, call);
  if (ssh) return ssh;
  const said = lines.filter((l) => /^(fatal|error):/.test(l)).pop() ?? lines.pop() ?? `git exited with ${code}`;
  if (!call.http || !REFUSED.test(said)) return said;
  if (call.auth) return `the server refused the secret ${call.auth.secretId} (git: ${said})`;
  return `the server wants credentials: give a token with --secret id=${AUTH_TOKEN_SECRET},env=VAR (or id=${AUTH_TOKEN_SECRET}.<host> for this host alone) (git: ${said})`;
}

/** `[-p PORT] HOST` of an ssh remote (an ssh:// URL or scp-like `user@host:path`). */
function keyscanArgs(remote: string): string {
  try {
    const url = new URL(remote);
    if (url.protocol === 'ssh:') return `${url.port ? `-p ${url.port} ` : ''}${url.hostname.replace(/^\[|\]$/g, '')}`;
  } catch {
    // scp-like
  }
  return /^[^@/]*@?([^:/]+):/.exec(remote)?.[1] ?? 'HOST';
}

/** ssh's own reasons, which git reports only as "Could not read from remote repository". */
function sshFailure(lines: string[], call: GitCall): string | undefined {
  if (lines.some((l) => /Host key verification failed/.test(l))) {
    return `ssh does not know the server's host key (Host key verification failed): add it to known_hosts first, e.g. ssh-keyscan ${keyscanArgs(call.remote)} >> ~/.ssh/known_hosts`;
  }
  const denied = lines.find((l) => /Permission denied \(/.test(l));
  if (!denied) return undefined;
  return call.agentSocket
    ? `the server refused the keys of --ssh default (ssh: ${denied})`
    : `the server refused ssh's keys: give an agent or a key file with --ssh default[=SOCKET|KEYFILE] (ssh: ${denied})`;
}

function git(args: string[], call: GitCall): Promise<GitRun> {
  const { signal, what, auth } = call;
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn('git', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: envWithAuth({
        ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '', SSH_ASKPASS: '', LC_ALL: 'C',
        ...(call.agentSocket ? { SSH_AUTH_SOCK: call.agentSocket } : {}),
      }, auth),
      signal,
      detached: true,
    });
    let stdout = '';
    // stderr by whole lines, each redacted as it ends: a line cut short could hold part of a
    // secret that the redaction would no longer recognise.
    let partial = '';
    const lines: string[] = [];
    const keep = (line: string) => {
      if (line.trim() === '') return;
      lines.push(redactAuth(line, auth));
      if (lines.length > 64) lines.shift();
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      const parts = (partial + d).split(/\r?\n|\r/);
      partial = parts.pop() ?? '';
      parts.forEach(keep);
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (signal?.aborted) reject(signal.reason instanceof Error ? signal.reason : err);
      else reject(new KilnError(err.code === 'ENOENT' ? `${what}: git is not installed (kiln runs the host's git for git sources)` : `${what}: ${err.message}`));
    });
    child.once('close', (code) => {
      if (code === 0) resolve({ stdout });
      else if (!signal?.aborted) {
        keep(partial);
        reject(new KilnError(`${what}: ${failure(lines, code, call)}`));
      }
    });
  });
}

/**
 * Runs `fn` with how git is called for `ref`'s remote: its authentication comes from the build's
 * secrets and --ssh default. Key files are served by an agent of kiln's for fn's duration.
 */
async function withCall<T>(ref: GitRef, opts: FetchOptions, fn: (call: GitCall) => Promise<T>): Promise<T> {
  const what = `git ${redactRemote(ref.remote)}`;
  let auth: GitAuth | undefined;
  try {
    auth = gitAuthFor(ref.remote, opts.secrets);
  } catch (err) {
    throw err instanceof KilnError ? new KilnError(`${what}: ${err.message}`) : err;
  }
  const call: GitCall = { signal: opts.signal, what, auth, http: isHttpRemote(ref.remote), remote: ref.remote, agentSocket: undefined };
  const agent = opts.sshAgents?.get('default');
  if (!agent) return fn(call);
  if (agent.kind === 'socket') return fn({ ...call, agentSocket: agent.path });
  const dir = await mkdtemp(join(tmpdir(), 'kiln-git-agent-'));
  let served: AgentServer | undefined;
  try {
    served = await serveAgent(agent, join(dir, 'agent.sock'), { mode: 0o600, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
    return await fn({ ...call, agentSocket: served.path });
  } finally {
    served?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The commit `ref` names on the remote: a full commit as given, else the tag or branch of that name. */
export async function resolveCommit(ref: GitRef, opts: FetchOptions = {}): Promise<string> {
  const name = ref.ref ?? 'HEAD';
  if (FULL_COMMIT.test(name)) return name;
  return withCall(ref, opts, async (call) => {
    const { stdout } = await git(['ls-remote', '--', ref.remote], call);
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
    throw new KilnError(`${call.what}: no branch or tag named "${name}" (a commit must be written in full)`);
  });
}

/**
 * Checks `commit` of the remote out into the empty folder `dir`, submodules included; its .git
 * folder goes unless `keepGitDir`.
 */
export async function checkout(ref: GitRef, commit: string, dir: string, opts: FetchOptions & { keepGitDir: boolean }): Promise<void> {
  await withCall(ref, opts, (call) => checkoutWith(ref, commit, dir, opts.keepGitDir, call));
}

async function checkoutWith(ref: GitRef, commit: string, dir: string, keepGitDir: boolean, call: GitCall): Promise<void> {
  const inDir = (args: string[]) => git(['-C', dir, ...args], call);
  await git(['init', '-q', dir], call);
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
  if (keepGitDir) return;
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
