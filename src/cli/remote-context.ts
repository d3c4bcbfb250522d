// A context that is not a local folder, as docker build takes it: a git repository
// (`https://host/repo.git#ref:subdir`, `git@host:repo.git`, `github.com/user/repo`), checked out
// at the commit the ref names, or the URL of a tar archive (plain or gzip) or of a Dockerfile
// alone. Either becomes a folder of the store's tmp/ for the build's duration; -f names a file
// inside it, and `-f -` still reads standard input.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { KilnError } from '../util/errors.js';
import { removeTree, type Store } from '../store/store.js';
import { forgetFolderDigests } from '../store/filehash-cache.js';
import { checkout, checkoutFolder, resolveCommit, type FetchOptions } from '../worker/git/fetch.js';
import { parseGitRef, redactRemote, type GitRef } from '../worker/git/ref.js';
import { readStdinContext, type StdinContext } from './stdin-context.js';

export type RemoteContext = { kind: 'git'; ref: GitRef } | { kind: 'url'; url: string };

/** The remote context `value` names, if it names one. */
export function remoteContextOf(value: string): RemoteContext | undefined {
  const ref = parseGitRef(value, { asContext: true });
  if (ref?.invalid) throw new KilnError(`context ${value}: ${ref.invalid}`, { exitCode: 2 });
  if (ref) return { kind: 'git', ref };
  if (/^https?:\/\//i.test(value)) return { kind: 'url', url: value };
  return undefined;
}

/** For messages and --explain: the context without credentials. */
export function describeRemote(r: RemoteContext): string {
  if (r.kind === 'url') return redactRemote(r.url);
  return `${redactRemote(r.ref.remote)}${r.ref.ref || r.ref.subdir ? `#${r.ref.ref ?? ''}${r.ref.subdir ? `:${r.ref.subdir}` : ''}` : ''}`;
}

/**
 * Fetches the context. `dockerfileName` is the Dockerfile inside it (`-f`, else `Dockerfile`),
 * undefined when it comes from standard input. `keepGitDir`: BUILDKIT_CONTEXT_KEEP_GIT_DIR.
 * `secrets` and `sshAgents`: the build's, for a private repository (fetch.ts).
 */
export async function fetchRemoteContext(
  store: Store, remote: RemoteContext, dockerfileName: string | undefined,
  opts: { keepGitDir: boolean; signal: AbortSignal } & FetchOptions,
): Promise<StdinContext> {
  if (remote.kind === 'url') return fetchArchive(store, remote.url, dockerfileName ?? 'Dockerfile', opts.signal);
  const commit = await resolveCommit(remote.ref, opts);
  if (remote.ref.checksum && !commit.startsWith(remote.ref.checksum)) {
    throw new KilnError(`context ${describeRemote(remote)}: checksum mismatch: the URL's checksum is ${remote.ref.checksum} but the ref is at commit ${commit}`);
  }
  const top = await store.tempDir('git-context');
  let dir = top;
  const release = async () => {
    await removeTree(top);
    await forgetFolderDigests(store, dir);
  };
  try {
    await checkout(remote.ref, commit, top, opts);
    if (remote.ref.subdir) dir = await checkoutFolder(top, remote.ref.subdir, `context ${describeRemote(remote)}`);
    if (dockerfileName === undefined) return { dir, dockerfile: '', dockerfileName: '<stdin>', release };
    let dockerfile: string;
    try {
      dockerfile = await readFile(join(dir, dockerfileName), 'utf8');
    } catch {
      throw new KilnError(`context ${describeRemote(remote)}: no ${dockerfileName} at commit ${commit}${remote.ref.subdir ? ` in ${remote.ref.subdir}` : ''}`, { exitCode: 1 });
    }
    return { dir, dockerfile, dockerfileName, release };
  } catch (err) {
    await release();
    throw err;
  }
}

async function fetchArchive(store: Store, url: string, dockerfileName: string, signal: AbortSignal): Promise<StdinContext> {
  const shown = redactRemote(url);
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (err) {
    throw new KilnError(`context ${shown}: download failed: ${(err as Error).message}`, { exitCode: 1 });
  }
  if (!res.ok || !res.body) throw new KilnError(`context ${shown}: download failed: HTTP ${res.status} ${res.statusText}`, { exitCode: 1 });
  return readStdinContext(store, dockerfileName, Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), shown);
}
