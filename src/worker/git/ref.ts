// Git references as BuildKit's Dockerfile frontend reads them: `REMOTE[#REF][:SUBDIR]`, where
// REMOTE is an https://, http://, git:// or ssh:// URL or an scp-like `user@host:path`. An
// http(s) URL is a git reference only when its path ends in `.git`; anything else there is a
// plain download. `github.com/user/repo` (no scheme) names a repository only as a build
// context, where BuildKit still accepts that older form.

export interface GitRef {
  /** What git fetches from (the part before `#`). */
  remote: string;
  /** A branch, tag, full commit or ref name; absent means the remote's HEAD. */
  ref?: string;
  /** A folder inside the repository; absent means its root. */
  subdir?: string;
}

const SCHEME = /^(https?|git|ssh):\/\//i;
const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/;

/** The reference `value` names, or undefined when it is not a git reference. */
export function parseGitRef(value: string, opts: { asContext?: boolean } = {}): GitRef | undefined {
  let text = value;
  if (opts.asContext && text.startsWith('github.com/')) text = `https://${text}`;
  else if (text.startsWith('./') || text.startsWith('../')) return undefined;
  const hash = text.indexOf('#');
  const remote = hash < 0 ? text : text.slice(0, hash);
  const scheme = SCHEME.exec(remote)?.[1]?.toLowerCase();
  if (scheme === undefined && !SCP_LIKE.test(remote)) return undefined;
  if ((scheme === 'http' || scheme === 'https') && !(opts.asContext && value.startsWith('github.com/'))) {
    const path = remote.replace(/[?].*$/, '');
    if (!path.endsWith('.git')) return undefined;
  }
  if (remote === '') return undefined;
  const out: GitRef = { remote };
  if (hash >= 0) {
    const fragment = text.slice(hash + 1);
    const colon = fragment.indexOf(':');
    const ref = colon < 0 ? fragment : fragment.slice(0, colon);
    const subdir = colon < 0 ? '' : fragment.slice(colon + 1);
    if (ref !== '') out.ref = ref;
    if (subdir !== '') out.subdir = subdir;
  }
  return out;
}

/** The remote without any password or token in it, for messages and cache keys. */
export function redactRemote(remote: string): string {
  return remote.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}

/** The type of an ADD <git ref>'s entry among a step's sources (--explain): `path` names the ref, `digest` the commit. */
export const GIT_REF = 'git-ref';
