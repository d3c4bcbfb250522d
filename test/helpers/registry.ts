// A real distribution registry (Debian's `docker-registry`) on loopback for one test file, and
// the small servers registry tests put around it: a token server for bearer auth, and a proxy
// that counts requests and can corrupt blobs on their way through.

import { Transform } from 'node:stream';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer, get as httpGet, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { tempDir } from './tmp.js';

export interface RegistryRequest {
  method: string;
  /** Path and query, e.g. `/v2/x/blobs/uploads/...`. */
  uri: string;
  status: number;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`: the registry part of a reference. */
  host: string;
  port: number;
  url: string;
  /** The registry's storage folder. */
  storage: string;
  /** Requests the registry has completed so far (from its JSON log). */
  requests(): RegistryRequest[];
  stop(): Promise<void>;
}

export type RegistryAuth =
  | { kind: 'htpasswd'; users: Record<string, string> }
  | { kind: 'token'; server: TokenServer };

export interface RegistryOptions {
  auth?: RegistryAuth;
  /** Serve HTTPS with this certificate (see makeTestCertificates). */
  tls?: TestCertificates;
}

export interface TestCertificates {
  /** A certificate authority made for the test, PEM. */
  caFile: string;
  /** The server's certificate for 127.0.0.1, signed by that authority, and its key. */
  certFile: string;
  keyFile: string;
}

/** A throwaway certificate authority and a server certificate for 127.0.0.1 it signed. */
export function makeTestCertificates(dir: string): TestCertificates {
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=kiln test authority', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
    '-keyout', f('server.key'), '-out', f('server.csr'));
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', f('server.ext'), '-out', f('server.pem'));
  return { caFile: f('ca.pem'), certFile: f('server.pem'), keyFile: f('server.key') };
}

/** Whether a GET of url gets any answer (HTTPS trusting ca). */
function answers(url: string, ca?: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = (url.startsWith('https:') ? httpsGet : httpGet)(url, { ca }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
  });
}

/** A free TCP port on 127.0.0.1 (the registry cannot take port 0 and tell us). */
export async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((res) => srv.close(() => res()));
  return port;
}

/**
 * Starts `docker-registry serve` on 127.0.0.1, waits until it answers, and stops it when the
 * current test ends: call it at a test file's top level (not in before()) to keep it for the file.
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const reg = await launchRegistry(opts);
  after(() => reg.stop());
  return reg;
}

/** The same without the test runner (for benchmarks): the caller must call stop(), which also removes its folder. */
export async function launchRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-registry-'));
  const storage = join(dir, 'storage');
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: json',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (opts.tls) lines.push('  tls:', `    certificate: ${opts.tls.certFile}`, `    key: ${opts.tls.keyFile}`);
  if (opts.auth?.kind === 'htpasswd') {
    const file = join(dir, 'htpasswd');
    writeFileSync(file, '');
    for (const [user, pass] of Object.entries(opts.auth.users)) {
      // bcrypt is the only hash the registry accepts.
      execFileSync('htpasswd', ['-B', '-b', file, user, pass], { stdio: 'ignore' });
    }
    lines.push('auth:', '  htpasswd:', '    realm: kiln-test', `    path: ${file}`);
  } else if (opts.auth?.kind === 'token') {
    const t = opts.auth.server;
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${t.url}/token`,
      `    service: ${t.service}`,
      `    issuer: ${t.issuer}`,
      `    rootcertbundle: ${t.certFile}`,
    );
  }
  const config = join(dir, 'config.yml');
  writeFileSync(config, lines.join('\n') + '\n');

  const logFile = join(dir, 'registry.log');
  const log = createWriteStream(logFile);
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  let exited = false;
  const exitPromise = new Promise<void>((res) => child.on('exit', () => ((exited = true), res())));

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM');
      await exitPromise;
    }
    await new Promise<void>((res) => log.end(res));
    await rm(dir, { recursive: true, force: true });
  };

  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const ca = opts.tls ? readFileSync(opts.tls.caFile) : undefined;
  for (let i = 0; ; i++) {
    if (exited) {
      const text = readFileSync(logFile, 'utf8');
      await stop();
      throw new Error(`docker-registry exited early: ${text}`);
    }
    if (await answers(`${url}/v2/`, ca)) break;
    if (i > 200) {
      await stop();
      throw new Error(`docker-registry did not answer on ${url}`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }

  return {
    host: `127.0.0.1:${port}`,
    port,
    url,
    storage,
    requests: () => parseRegistryLog(readFileSync(logFile, 'utf8')),
    stop,
  };
}

function parseRegistryLog(text: string): RegistryRequest[] {
  const out: RegistryRequest[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (rec.msg !== 'response completed') continue;
    out.push({
      method: String(rec['http.request.method']),
      uri: String(rec['http.request.uri']),
      status: Number(rec['http.response.status']),
    });
  }
  return out;
}

/** Blob uploads the registry finished (the final PUT of each upload session). */
export function completedUploads(reqs: RegistryRequest[]): RegistryRequest[] {
  return reqs.filter((r) => r.method === 'PUT' && /\/blobs\/uploads\//.test(r.uri) && r.status === 201);
}

/** Blob bodies the registry served. */
export function blobDownloads(reqs: RegistryRequest[]): RegistryRequest[] {
  return reqs.filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.uri) && r.status === 200);
}

// ---------------------------------------------------------------- token server

export interface TokenServer {
  url: string;
  service: string;
  issuer: string;
  /** PEM certificate the registry trusts for token signatures. */
  certFile: string;
  /** Token requests seen, with the user that authenticated (undefined: anonymous). */
  requests: { user?: string; scopes: string[]; status: number }[];
}

/**
 * A token server in the style of Docker Hub's: basic credentials in, a signed JWT out, granting
 * the requested scopes to known users (and nothing to anonymous ones).
 */
export async function startTokenServer(users: Record<string, string>): Promise<TokenServer> {
  const dir = await tempDir('kiln-token-');
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=kiln-test-token'],
    { stdio: 'ignore' },
  );
  const key = readFileSync(keyFile, 'utf8');
  const certDer = new X509Certificate(readFileSync(certFile)).raw.toString('base64');
  const service = 'kiln-test-registry';
  const issuer = 'kiln-test-issuer';
  const requests: TokenServer['requests'] = [];

  const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');
  const sign = (claims: object) => {
    const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [certDer] }));
    const body = b64url(JSON.stringify(claims));
    const s = createSign('RSA-SHA256').update(`${head}.${body}`).sign(key);
    return `${head}.${body}.${b64url(s)}`;
  };

  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const scopes = u.searchParams.getAll('scope');
    let user: string | undefined;
    const h = req.headers.authorization;
    if (h?.startsWith('Basic ')) {
      const [name, ...rest] = Buffer.from(h.slice(6), 'base64').toString().split(':');
      if (users[name!] === undefined || users[name!] !== rest.join(':')) {
        requests.push({ user: name, scopes, status: 401 });
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ details: 'incorrect username or password' }));
        return;
      }
      user = name;
    }
    const access = user
      ? scopes.flatMap((s) => {
          const [type, name, actions] = s.split(':');
          return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
        })
      : [];
    const now = Math.floor(Date.now() / 1000);
    const token = sign({
      iss: issuer,
      sub: user ?? '',
      aud: u.searchParams.get('service') ?? service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    });
    requests.push({ user, scopes, status: 200 });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  await listen(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, service, issuer, certFile, requests };
}

// ---------------------------------------------------------------- proxy

export interface TestProxy {
  host: string;
  /** Requests that went through, in the order answered; `at` is when each arrived (ms since the epoch). */
  requests: { method: string; url: string; status: number; at: number }[];
}

export interface ProxyOptions {
  /** Flip one byte in the body of every blob GET whose digest this returns true for. */
  corruptBlob?: (digest: string) => boolean;
  /** Cut the connection after the first chunk of a blob GET whose digest this returns true for. */
  breakBlob?: (digest: string) => boolean;
  /** Send the body of a blob GET at most this many bytes a second (undefined: at full speed). */
  throttleBlob?: (digest: string) => number | undefined;
}

/** Bytes counted since `start`, for pass-throughs that share one rate. */
export interface Link {
  start: number;
  sent: number;
}

/**
 * A pass-through that lets at most `rate` bytes a second through (a registry across a network);
 * pass-throughs given the same `link` share that rate, as uploads share an uplink.
 */
export function throttle(rate: number, link: Link = { start: Date.now(), sent: 0 }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      // A link idle for a while does not bank the time for a later burst.
      link.start = Math.max(link.start, Date.now() - (link.sent / rate) * 1000);
      link.sent += chunk.length;
      setTimeout(() => cb(null, chunk), Math.max(0, link.start + (link.sent / rate) * 1000 - Date.now()));
    },
  });
}

/** An HTTP proxy in front of `target` (`127.0.0.1:PORT`) that records requests and can corrupt blobs. */
export async function startProxy(target: string, opts: ProxyOptions = {}): Promise<TestProxy> {
  const [thost, tport] = target.split(':');
  const requests: TestProxy['requests'] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const at = Date.now();
    const blob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
    const corrupt = req.method === 'GET' && blob !== null && (opts.corruptBlob?.(blob[1]!) ?? false);
    const cut = req.method === 'GET' && blob !== null && !corrupt && (opts.breakBlob?.(blob[1]!) ?? false);
    const up = httpRequest(
      // The Host header passes through unchanged: the registry builds Location URLs from it, so
      // upload sessions keep going through the proxy.
      { host: thost, port: Number(tport), method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        requests.push({ method: req.method ?? '', url: req.url ?? '', status: upRes.statusCode ?? 0, at });
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (cut) {
          upRes.once('data', (chunk: Buffer) => {
            res.write(chunk.subarray(0, Math.max(1, chunk.length >> 1)));
            upRes.destroy();
            res.destroy();
          });
          return;
        }
        const rate = req.method === 'GET' && blob !== null ? opts.throttleBlob?.(blob[1]!) : undefined;
        if (rate !== undefined) {
          upRes.pipe(throttle(rate)).pipe(res);
          res.on('close', () => upRes.destroy());
          return;
        }
        if (!corrupt) {
          upRes.pipe(res);
          return;
        }
        let flipped = false;
        upRes.on('data', (chunk: Buffer) => {
          if (!flipped && chunk.length > 0) {
            const copy = Buffer.from(chunk);
            const i = Math.floor(copy.length / 2);
            copy[i] = copy[i]! ^ 0xff;
            flipped = true;
            res.write(copy);
          } else res.write(chunk);
        });
        upRes.on('end', () => res.end());
      },
    );
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await listen(server);
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

async function listen(server: Server): Promise<void> {
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  after(
    () =>
      new Promise<void>((res) => {
        server.close(() => res());
        // Keep-alive sockets from fetch would hold close() open until they time out.
        server.closeAllConnections();
      }),
  );
}
