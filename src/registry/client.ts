// A client for one registry host speaking the OCI distribution API over global fetch:
// manifests, blobs, uploads (monolithic, chunked, cross-repository mount), with auth handled
// per request: a 401 with a challenge gets a bearer token for the request's scopes (or basic
// credentials) and the request is retried once.

import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Digest } from '../graph/ops.js';
import { MediaType } from '../image/types.js';
import { sha256 } from '../util/digest.js';
import { KilnError } from '../util/errors.js';
import { basicHeader, causeCode, causeMessage, fetchToken, parseChallenges, type Challenge, type Token } from './auth.js';
import { lookupCredentials, type Credentials } from './credentials.js';
import { isLoopbackRegistry, registryApiHost } from './reference.js';
import { httpFetch } from '../util/fetch.js';

export interface RegistryOptions {
  /** Hosts (`host[:port]`) that may be reached over plain HTTP, besides loopback ones. */
  insecureRegistries?: string[];
  /** Where config.json lives; default $DOCKER_CONFIG or ~/.docker. */
  dockerConfigDir?: string;
  /** Credentials to use instead of config.json's (for `kiln login`'s check). */
  credentials?: Credentials;
  /** Aborts requests in flight (Ctrl-C). */
  signal?: AbortSignal;
}

export const MANIFEST_TYPES = [MediaType.ociIndex, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.dockerManifest];
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The connection failed (not the registry's answer): worth another try. */
export class NetworkError extends KilnError {}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

export interface UploadOptions {
  /** `auto` sends blobs up to `chunkSize` in one PUT and bigger ones in PATCH chunks. */
  mode?: 'auto' | 'monolithic' | 'chunked';
  chunkSize?: number;
}

type Scope = string;

export function pullScope(repo: string): Scope {
  return `repository:${repo}:pull`;
}
export function pushScope(repo: string): Scope {
  return `repository:${repo}:pull,push`;
}

interface RequestInit2 {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string | (() => Readable);
  /** Content-Length for a streamed body. */
  length?: number;
  scopes: Scope[];
  /** Don't follow redirects (uploads answer with Location to follow by hand). */
  manualRedirect?: boolean;
}

export class RegistryClient {
  private base?: Promise<string>;
  private creds?: Promise<Credentials | undefined>;
  private readonly tokens = new Map<string, Token>();
  private challenge?: Challenge;

  constructor(
    /** Normalised registry name, as in references (`docker.io`, `127.0.0.1:5000`). */
    readonly registry: string,
    private readonly opts: RegistryOptions = {},
  ) {}

  aborted(): boolean {
    return this.opts.signal?.aborted ?? false;
  }

  private allowHttp(): boolean {
    return isLoopbackRegistry(this.registry) || (this.opts.insecureRegistries ?? []).includes(this.registry);
  }

  /**
   * `https://host` or, for loopback and --insecure-registry hosts when TLS does not answer,
   * `http://host`. Decided once per client by GET /v2/, which also yields the auth challenge.
   */
  baseUrl(): Promise<string> {
    this.base ??= (async () => {
      const host = registryApiHost(this.registry);
      const schemes = this.allowHttp() ? ['https', 'http'] : ['https'];
      let lastErr: unknown;
      for (const scheme of schemes) {
        const url = `${scheme}://${host}`;
        try {
          const res = await httpFetch(`${url}/v2/`, { redirect: 'follow' });
          await drain(res);
          if (res.status === 401) this.rememberChallenge(res);
          return url;
        } catch (err) {
          lastErr = err;
          // The server speaks TLS but its certificate is not trusted: plain HTTP cannot be right.
          if (isCertificateError(err)) {
            throw new KilnError(
              `cannot reach registry ${this.registry}: ${causeMessage(err)} (trust its certificate authority with NODE_EXTRA_CA_CERTS=FILE)`,
            );
          }
        }
      }
      // A TLS failure against a plain-HTTP registry is the common case worth a hint.
      const tls = /EPROTO|SSL|TLS|wrong version number/i.test(causeMessage(lastErr));
      const hint = !this.allowHttp() && tls ? ' (plain HTTP is used only for localhost and hosts given with --insecure-registry)' : '';
      throw new KilnError(`cannot reach registry ${this.registry}: ${causeMessage(lastErr)}${hint}`);
    })();
    this.base.catch(() => (this.base = undefined));
    return this.base;
  }

  private credentials(): Promise<Credentials | undefined> {
    this.creds ??= this.opts.credentials
      ? Promise.resolve(this.opts.credentials)
      : lookupCredentials(this.registry, this.opts.dockerConfigDir);
    return this.creds;
  }

  private rememberChallenge(res: Response): void {
    const h = res.headers.get('www-authenticate');
    if (!h) return;
    const cs = parseChallenges(h);
    this.challenge = cs.find((c) => c.scheme === 'bearer') ?? cs.find((c) => c.scheme === 'basic') ?? this.challenge;
  }

  /** The Authorization header for these scopes, fetching a token when the registry wants one. */
  private async authHeader(scopes: Scope[], force: boolean): Promise<string | undefined> {
    const c = this.challenge;
    if (!c) return undefined;
    const creds = await this.credentials();
    if (c.scheme === 'basic') {
      if (!creds || creds.username === undefined) {
        throw new KilnError(`registry ${this.registry} requires authentication: kiln login ${this.registry}`);
      }
      return basicHeader(creds);
    }
    if (c.scheme !== 'bearer') throw new KilnError(`registry ${this.registry}: unsupported auth scheme "${c.scheme}"`);
    const key = [...scopes].sort().join(' ');
    const cached = this.tokens.get(key);
    if (cached && !force && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    const t = await fetchToken(this.registry, c, scopes, creds);
    this.tokens.set(key, t);
    return `Bearer ${t.token}`;
  }

  /** One request with auth; on 401 it learns the challenge, gets a fresh token, and retries once. */
  private async request(path: string, init: RequestInit2): Promise<Response> {
    const base = await this.baseUrl();
    const url = /^https?:\/\//.test(path) ? path : `${base}${path}`;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...init.headers };
      const auth = await this.authHeader(init.scopes, attempt > 0);
      if (auth) headers.authorization = auth;
      let body: BodyInit | undefined;
      let duplex: 'half' | undefined;
      if (typeof init.body === 'function') {
        body = Readable.toWeb(init.body()) as unknown as BodyInit;
        duplex = 'half';
        if (init.length !== undefined) headers['content-length'] = String(init.length);
      } else if (init.body !== undefined) {
        body = typeof init.body === 'string' ? init.body : new Uint8Array(init.body);
      }
      let res: Response;
      try {
        res = await httpFetch(url, {
          method: init.method ?? 'GET',
          headers,
          body,
          redirect: init.manualRedirect ? 'manual' : 'follow',
          signal: this.opts.signal,
          ...(duplex ? { duplex } : {}),
        } as RequestInit);
      } catch (err) {
        if (this.opts.signal?.aborted) throw err;
        throw new NetworkError(`registry ${this.registry}: ${init.method ?? 'GET'} ${new URL(url).pathname} failed: ${causeMessage(err)}`);
      }
      if (res.status !== 401 || attempt > 0) return res;
      await drain(res);
      this.rememberChallenge(res);
      if (!this.challenge) return res;
    }
  }

  private async fail(res: Response, what: string): Promise<never> {
    const text = await res.text().catch(() => '');
    let detail = '';
    try {
      const j = JSON.parse(text) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
      detail = (j.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    } catch {
      detail = text.trim().slice(0, 200);
    }
    if (res.status === 401) {
      const creds = await this.credentials();
      throw new KilnError(
        `${what}: registry ${this.registry} refused the credentials${creds?.username ? ` of user "${creds.username}"` : ' (none given)'}` +
          `${detail ? ` (${detail})` : ''}; log in with: kiln login ${this.registry}`,
      );
    }
    if (res.status === 403) throw new KilnError(`${what}: registry ${this.registry} denied access${detail ? ` (${detail})` : ''}`);
    throw new KilnError(`${what}: registry ${this.registry} answered ${res.status}${detail ? ` (${detail})` : ''}`);
  }

  /** GET /v2/ with the credentials: throws a clear KilnError when they are refused. */
  async checkLogin(): Promise<void> {
    const res = await this.request('/v2/', { scopes: [] });
    await drain(res);
    if (res.status === 401) await this.fail(res, 'login');
    if (!res.ok) await this.fail(res, 'login');
  }

  // ---------------------------------------------------------------- manifests

  /** Fetches a manifest or index by tag or digest; verifies its digest when asked by digest. */
  async getManifest(repo: string, reference: string, accept: string[] = MANIFEST_TYPES): Promise<FetchedManifest> {
    const what = `${this.registry}/${repo}:${reference}`.replace(/:sha256:/, '@sha256:');
    const res = await this.request(`/v2/${repo}/manifests/${reference}`, {
      headers: { accept: accept.join(', ') },
      scopes: [pullScope(repo)],
    });
    if (res.status === 404) {
      await drain(res);
      throw new KilnError(`${what}: not found in the registry`);
    }
    if (!res.ok) await this.fail(res, `pull ${what}`);
    const len = Number(res.headers.get('content-length') ?? '0');
    if (len > MAX_MANIFEST_BYTES) throw new KilnError(`${what}: manifest of ${len} bytes is larger than ${MAX_MANIFEST_BYTES}`);
    let bytes: Buffer;
    try {
      bytes = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw new KilnError(`${what}: reading the manifest failed: ${causeMessage(err)}`);
    }
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new KilnError(`${what}: the registry's manifest does not match digest ${reference} (got ${digest})`);
    }
    let mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    try {
      const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; schemaVersion?: number; manifests?: unknown; config?: unknown };
      if (parsed.schemaVersion === 1) throw new KilnError(`${what}: schema 1 manifests are not supported (push it again with a newer client)`);
      // The document's own mediaType is authoritative; registries sometimes send a generic one.
      if (parsed.mediaType) mediaType = parsed.mediaType;
      else if (!MANIFEST_TYPES.includes(mediaType as (typeof MANIFEST_TYPES)[number])) {
        mediaType = parsed.manifests ? MediaType.ociIndex : MediaType.ociManifest;
      }
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw new KilnError(`${what}: the registry's manifest is not JSON`);
    }
    return { bytes, mediaType, digest };
  }

  /** Digest of a tag's manifest without downloading it; undefined when the tag does not exist. */
  async headManifest(repo: string, reference: string): Promise<{ digest: Digest; mediaType: string; size: number } | undefined> {
    const res = await this.request(`/v2/${repo}/manifests/${reference}`, {
      method: 'HEAD',
      headers: { accept: MANIFEST_TYPES.join(', ') },
      scopes: [pullScope(repo)],
    });
    if (res.status === 404) return undefined;
    if (!res.ok) await this.fail(res, `${this.registry}/${repo}:${reference}`);
    const digest = res.headers.get('docker-content-digest');
    if (!digest || !/^sha256:[0-9a-f]{64}$/.test(digest)) return undefined;
    return {
      digest: digest as Digest,
      mediaType: (res.headers.get('content-type') ?? '').split(';')[0]!.trim(),
      size: Number(res.headers.get('content-length') ?? 0),
    };
  }

  /** PUTs a manifest under a tag or its digest; returns the digest the registry computed. */
  async putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const res = await this.request(`/v2/${repo}/manifests/${reference}`, {
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body: bytes,
      scopes: [pushScope(repo)],
    });
    if (!res.ok) await this.fail(res, `push manifest ${this.registry}/${repo}:${reference}`);
    await drain(res);
    return (res.headers.get('docker-content-digest') as Digest | null) ?? sha256(bytes);
  }

  // ---------------------------------------------------------------- blobs

  /** The blob's bytes as they arrive (the caller verifies them while storing). */
  async fetchBlob(repo: string, digest: Digest): Promise<Readable> {
    const res = await this.request(`/v2/${repo}/blobs/${digest}`, { scopes: [pullScope(repo)] });
    if (res.status === 404) {
      await drain(res);
      throw new KilnError(`blob ${digest}: not found in ${this.registry}/${repo}`);
    }
    if (!res.ok || !res.body) await this.fail(res, `blob ${digest}`);
    return Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>);
  }

  async hasBlob(repo: string, digest: Digest, scopes: Scope[] = [pullScope(repo)]): Promise<boolean> {
    const res = await this.request(`/v2/${repo}/blobs/${digest}`, { method: 'HEAD', scopes });
    if (res.ok) return true;
    if (res.status === 404) return false;
    return this.fail(res, `blob ${digest}`);
  }

  /**
   * Asks the registry to link a blob from another repository on the same registry. True when it
   * did (201); false when it did not (it then opened an upload session, which we abandon).
   */
  async mountBlob(repo: string, digest: Digest, fromRepo: string): Promise<boolean> {
    const q = new URLSearchParams({ mount: digest, from: fromRepo });
    const res = await this.request(`/v2/${repo}/blobs/uploads/?${q}`, {
      method: 'POST',
      scopes: [pushScope(repo), pullScope(fromRepo)],
      manualRedirect: true,
    });
    await drain(res);
    if (res.status === 201) return true;
    if (res.status === 202) {
      const loc = res.headers.get('location');
      if (loc) await this.request(await this.absolute(loc), { method: 'DELETE', scopes: [pushScope(repo)] }).then(drain, () => undefined);
      return false;
    }
    if (res.status === 401 || res.status === 403 || res.status === 404) return false;
    return this.fail(res, `mount blob ${digest}`);
  }

  /** Uploads a blob; `open` is called for each attempt's body stream. */
  async uploadBlob(repo: string, digest: Digest, size: number, open: (start?: number, end?: number) => Readable, opts: UploadOptions = {}): Promise<void> {
    const scopes = [pushScope(repo)];
    const start = await this.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST', scopes, manualRedirect: true });
    await drain(start);
    if (start.status !== 202) await this.fail(start, `upload blob ${digest}`);
    let location = await this.absolute(start.headers.get('location'));
    const minChunk = Number(start.headers.get('oci-chunk-min-length') ?? 0);
    const chunkSize = Math.max(opts.chunkSize ?? 32 * 1024 * 1024, minChunk);
    const mode = opts.mode ?? 'auto';
    const chunked = mode === 'chunked' || (mode === 'auto' && size > chunkSize);

    if (chunked) {
      for (let off = 0; off < size; off += chunkSize) {
        const end = Math.min(off + chunkSize, size);
        const res = await this.request(location, {
          method: 'PATCH',
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${off}-${end - 1}` },
          body: () => open(off, end),
          length: end - off,
          scopes,
          manualRedirect: true,
        });
        await drain(res);
        if (res.status !== 202) await this.fail(res, `upload blob ${digest} (chunk at ${off})`);
        location = await this.absolute(res.headers.get('location'));
      }
      const fin = await this.request(withDigest(location, digest), { method: 'PUT', headers: { 'content-length': '0' }, scopes, manualRedirect: true });
      await drain(fin);
      if (fin.status !== 201) await this.fail(fin, `upload blob ${digest}`);
      return;
    }
    const res = await this.request(withDigest(location, digest), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: () => open(),
      length: size,
      scopes,
      manualRedirect: true,
    });
    await drain(res);
    if (res.status !== 201) await this.fail(res, `upload blob ${digest}`);
  }

  private async absolute(location: string | null): Promise<string> {
    if (!location) throw new KilnError(`registry ${this.registry}: upload answer without a Location header`);
    return new URL(location, await this.baseUrl()).toString();
  }
}

/** Reads and drops a body we do not need; a connection dropped meanwhile is not our error. */
async function drain(res: Response): Promise<void> {
  try {
    await drain(res);
  } catch {
    // nothing to do: the status is what we act on
  }
}

function withDigest(location: string, digest: Digest): string {
  const u = new URL(location);
  u.searchParams.set('digest', digest);
  return u.toString();
}

/** One client per registry host (and abort signal), so tokens and the scheme are reused. */
const clients = new WeakMap<object, Map<string, RegistryClient>>();
const NO_SIGNAL = {};
export function clientFor(registry: string, opts: RegistryOptions = {}): RegistryClient {
  if (opts.credentials) return new RegistryClient(registry, opts);
  const bucketKey = opts.signal ?? NO_SIGNAL;
  let bucket = clients.get(bucketKey);
  if (!bucket) clients.set(bucketKey, (bucket = new Map()));
  const key = `${registry}\0${opts.dockerConfigDir ?? ''}\0${(opts.insecureRegistries ?? []).join(',')}`;
  let c = bucket.get(key);
  if (!c) bucket.set(key, (c = new RegistryClient(registry, opts)));
  return c;
}

/** Node's codes for a certificate that did not verify (OpenSSL's X509 names, and a wrong host). */
function isCertificateError(err: unknown): boolean {
  const code = causeCode(err);
  return code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_(GET_ISSUER|VERIFY)/.test(code);
}
