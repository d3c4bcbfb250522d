// Git references as BuildKit's Dockerfile frontend reads them: `REMOTE[#REF][:SUBDIR]`, or
// with a URL query (BuildKit 0.24): `REMOTE?branch=B&subdir=D`, with `tag`, `ref` and `checksum`
// (alias `commit`) too. REMOTE is an https://, http://, git:// or ssh:// URL or an scp-like
// `user@host:path`. An http(s) URL is a git reference only when its path ends in `.git`;
// anything else there is a plain download. `github.com/user/repo` (no scheme) names a repository
// only as a build context, where BuildKit still accepts that older form.

export interface GitRef {
  /** What git fetches from (the part before `#`). */
  remote: string;
  /** A branch, tag, full commit or ref name; absent means the remote's HEAD. */
  ref?: string;
  /** A folder inside the repository; absent means its root. */
  subdir?: string;
  /** The commit the ref must name (in full, or its start): the query's `checksum`. */
  checksum?: string;
  /** Why the reference cannot be used (a bad query), for the caller to report where it was written. */
  invalid?: string;
}

const QUERY_KEYS = new Set(['ref', 'branch', 'tag', 'subdir', 'checksum', 'commit']);

/** A query's fields onto `out`; a fragment beside a query is refused, as BuildKit refuses it. */
function applyQuery(out: GitRef, query: string, hasFragment: boolean): void {
  const params = new URLSearchParams(query);
  const unknown = [...params.keys()].filter((k) => !QUERY_KEYS.has(k));
  const refs = ['ref', 'branch', 'tag'].filter((k) => params.has(k));
  if (unknown.length) out.invalid = `unknown git query key ${unknown[0]} (ref, branch, tag, subdir, checksum or commit)`;
  else if (hasFragment) out.invalid = 'a git reference takes a #fragment or a ?query, not both';
  else if (refs.length > 1) out.invalid = `a git query names one of ref, branch and tag, got ${refs.join(' and ')}`;
  if (out.invalid) return;
  const branch = params.get('branch');
  const tag = params.get('tag');
  const ref = branch ? `refs/heads/${branch}` : tag ? `refs/tags/${tag}` : params.get('ref');
  if (ref) out.ref = ref;
  const subdir = params.get('subdir');
  if (subdir) out.subdir = subdir;
  const checksum = params.get('checksum') ?? params.get('commit');
  if (checksum) {
    if (/^[0-9a-f]{4,64}$/.test(checksum)) out.checksum = checksum;
    else out.invalid = `invalid git checksum "${checksum}": expected the commit (hex digits)`;
  }
}

const SCHEME = /^(https?|git|ssh):\/\//i;
const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/;

/** The reference `value` names, or undefined when it is not a git reference. */
export function parseGitRef(value: string, opts: { asContext?: boolean } = {}): GitRef | undefined {
  let text = value;
  if (opts.asContext && text.startsWith('github.com/')) text = `https://${text}`;
  else if (text.startsWith('./') || text.startsWith('../')) return undefined;
  const hash = text.indexOf('#');
  const beforeHash = hash < 0 ? text : text.slice(0, hash);
  const q = beforeHash.indexOf('?');
  const remote = q < 0 ? beforeHash : beforeHash.slice(0, q);
  const scheme = SCHEME.exec(remote)?.[1]?.toLowerCase();
  if (scheme === undefined && !SCP_LIKE.test(remote)) return undefined;
  if ((scheme === 'http' || scheme === 'https') && !(opts.asContext && value.startsWith('github.com/'))) {
    if (!remote.endsWith('.git')) return undefined;
  }
  if (remote === '') return undefined;
  const out: GitRef = { remote };
  if (q >= 0) applyQuery(out, beforeHash.slice(q + 1), hash >= 0);
  else if (hash >= 0) {
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
