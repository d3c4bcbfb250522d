// Registry authentication: the WWW-Authenticate challenge a registry answers 401 with, and the
// bearer token dance (distribution's token spec) that turns credentials plus scopes into a token.

import { KilnError, errorMessage } from '../util/errors.js';
import type { Credentials } from './credentials.js';
import { httpFetch } from '../util/fetch.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="a b"` (several challenges may be comma-joined). */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => {
    while (i < s.length && /[\s,]/.test(s[i]!)) i++;
  };
  while (i < s.length) {
    skipWs();
    const m = /^[A-Za-z][A-Za-z0-9._~+/-]*/.exec(s.slice(i));
    if (!m) break;
    const scheme = m[0];
    i += scheme.length;
    const params: Record<string, string> = {};
    for (;;) {
      const save = i;
      skipWs();
      const km = /^([A-Za-z0-9_-]+)\s*=\s*/.exec(s.slice(i));
      if (!km) {
        i = save;
        break;
      }
      i += km[0].length;
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        const vm = /^[^,\s]*/.exec(s.slice(i))!;
        value = vm[0];
        i += value.length;
      }
      params[km[1]!.toLowerCase()] = value;
    }
    out.push({ scheme: scheme.toLowerCase(), params });
  }
  return out;
}

export function basicHeader(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64')}`;
}

export interface Token {
  token: string;
  /** Epoch ms after which the token should not be reused. */
  expiresAt: number;
}

/**
 * Asks the challenge's realm for a token covering `scopes`. With an identity token, uses the
 * OAuth2 refresh-token grant as docker does; with a password, basic auth on a GET.
 */
export async function fetchToken(
  registry: string,
  challenge: Challenge,
  scopes: string[],
  creds: Credentials | undefined,
): Promise<Token> {
  const realm = challenge.params.realm;
  if (!realm) throw new KilnError(`registry ${registry}: bearer challenge without a realm`);
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new KilnError(`registry ${registry}: token realm "${realm}" is not a URL`);
  }
  const service = challenge.params.service;
  let res: Response;
  try {
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'kiln' });
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await httpFetch(url, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    } else {
      if (service) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (creds?.username !== undefined) headers.authorization = basicHeader(creds);
      res = await httpFetch(url, { headers });
    }
  } catch (err) {
    throw new KilnError(`registry ${registry}: cannot reach token server ${url.origin}: ${causeMessage(err)}`);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw new KilnError(`registry ${registry}: reading the token server's answer failed: ${causeMessage(err)}`);
  }
  if (res.status === 401 || res.status === 403) {
    throw new KilnError(
      `registry ${registry}: authentication failed${creds?.username ? ` for user "${creds.username}"` : ''} ` +
        `(token server said ${res.status}${detail(text)}); check the credentials (kiln login ${registry})`,
    );
  }
  if (!res.ok) throw new KilnError(`registry ${registry}: token server answered ${res.status}${detail(text)}`);
  let body: { token?: string; access_token?: string; expires_in?: number };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new KilnError(`registry ${registry}: token server answered something other than JSON`);
  }
  const token = body.token || body.access_token;
  if (!token) throw new KilnError(`registry ${registry}: token server answered without a token`);
  // The spec's default lifetime is 60s; renew a little early.
  const lifetime = Math.max(body.expires_in ?? 60, 10) * 1000;
  return { token, expiresAt: Date.now() + lifetime - 5000 };
}

/** The system or OpenSSL code of the error under a failed fetch(), if any. */
export function causeCode(err: unknown): string | undefined {
  return err instanceof Error && err.cause instanceof Error ? (err.cause as NodeJS.ErrnoException).code : undefined;
}

function detail(text: string): string {
  const t = text.trim().slice(0, 300);
  return t ? `: ${t}` : '';
}

/** fetch() hides the useful part ("ECONNREFUSED") in err.cause. */
export function causeMessage(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
  const code = causeCode(err);
  if (!cause) return errorMessage(err);
  // OpenSSL's messages are multi-line internals; the code says it all.
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') return `the server does not speak TLS (${code})`;
  if (code?.startsWith('ERR_SSL_')) return `TLS error ${code}`;
  return `${code ? `${code} ` : ''}${cause.message.split('\n')[0]}`;
}
