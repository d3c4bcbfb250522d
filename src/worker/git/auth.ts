// BuildKit's git authentication over HTTP(S): the build secrets GIT_AUTH_HEADER (the whole value
// of an Authorization header) and GIT_AUTH_TOKEN (sent as basic auth for user x-access-token),
// each also as `ID.<host>` for one host. The first of these that was given wins: the header for
// the remote's host, the token for it, then the generic header, then the generic token.
//
// git gets the header as configuration in its environment (GIT_CONFIG_COUNT), never on its
// command line: another user can read a process's arguments in `ps`, but not its environment.

import { KilnError } from '../../util/errors.js';

export const AUTH_HEADER_SECRET = 'GIT_AUTH_HEADER';
export const AUTH_TOKEN_SECRET = 'GIT_AUTH_TOKEN';

export interface GitAuth {
  /** The secret the header was made from, for messages: its id, never its value. */
  secretId: string;
  /** git configuration (key, value) that sends the header. */
  config: Array<[string, string]>;
  /** What must never reach a message: the secret and the header made of it. */
  hidden: string[];
}

/**
 * The secret ids to look for, best first. The host is the URL's host with its port, as BuildKit
 * names it, then without the port: `GIT_AUTH_TOKEN.127.0.0.1` serves every port of that host.
 */
function candidates(url: URL): Array<{ id: string; token: boolean }> {
  const hosts = [...new Set([url.host, url.hostname])];
  return [
    ...hosts.flatMap((h) => [{ id: `${AUTH_HEADER_SECRET}.${h}`, token: false }, { id: `${AUTH_TOKEN_SECRET}.${h}`, token: true }]),
    { id: AUTH_HEADER_SECRET, token: false },
    { id: AUTH_TOKEN_SECRET, token: true },
  ];
}

/** The remotes the GIT_AUTH_* secrets apply to. */
export const isHttpRemote = (remote: string): boolean => /^https?:\/\//i.test(remote);

/** The authentication `secrets` give git for `remote`; none for a remote that is not http(s). */
export function gitAuthFor(remote: string, secrets: ReadonlyMap<string, Buffer> | undefined): GitAuth | undefined {
  if (!secrets?.size || !isHttpRemote(remote)) return undefined;
  let url: URL;
  try {
    url = new URL(remote);
  } catch {
    return undefined; // git says what is wrong with the URL
  }
  for (const c of candidates(url)) {
    const raw = secrets.get(c.id);
    if (raw === undefined) continue;
    // A secret file usually ends in a newline, which no token or header value holds.
    const value = raw.toString('utf8').trim();
    if (value === '') throw new KilnError(`--secret ${c.id} is empty`);
    if (/[\r\n]/.test(value)) throw new KilnError(`--secret ${c.id} holds a line break: it must be one line`);
    const encoded = c.token ? Buffer.from(`x-access-token:${value}`).toString('base64') : undefined;
    const header = encoded ? `basic ${encoded}` : value;
    // The remote's scheme and host, every path: a submodule on the same server is fetched with
    // it too, a remote elsewhere (or over plain http when the remote is https) never sees it.
    const scope = `${url.protocol}//${url.host}/`;
    return {
      secretId: c.id,
      config: [[`http.${scope}.extraHeader`, `Authorization: ${header}`]],
      hidden: encoded ? [value, encoded] : [value, ...credentialsOf(value)],
    };
  }
  return undefined;
}

/** A header value's credentials, without its scheme (`bearer X` -> X), to hide on their own too. */
function credentialsOf(header: string): string[] {
  const rest = header.replace(/^\S+\s+/, '');
  return rest !== header && rest.length >= 4 ? [rest] : [];
}

/**
 * `env` with `config` added after whatever GIT_CONFIG_COUNT entries it holds already (a user's
 * own, or a test's). Git tracing is told to redact, as it does by default, whatever the user set.
 */
export function envWithAuth(env: NodeJS.ProcessEnv, auth: GitAuth | undefined): NodeJS.ProcessEnv {
  if (!auth) return env;
  const count = Number.parseInt(env.GIT_CONFIG_COUNT ?? '0', 10);
  let n = Number.isInteger(count) && count > 0 ? count : 0;
  const out: NodeJS.ProcessEnv = { ...env, GIT_TRACE_REDACT: '1' };
  for (const [key, value] of auth.config) {
    out[`GIT_CONFIG_KEY_${n}`] = key;
    out[`GIT_CONFIG_VALUE_${n}`] = value;
    n++;
  }
  out.GIT_CONFIG_COUNT = String(n);
  return out;
}

/** `text` with every secret of `auth` replaced, for a message that quotes git. */
export function redactAuth(text: string, auth: GitAuth | undefined): string {
  if (!auth) return text;
  let out = text;
  for (const h of auth.hidden) out = out.split(h).join('***');
  return out;
}
