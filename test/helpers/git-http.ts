// A git server over HTTP on loopback for private repositories: `git http-backend` run as a CGI
// program for each request, serving the bare repositories in one folder, behind a check of the
// Authorization header. It keeps every header it was sent, so a test can see what git sent.

import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GitHttpServer {
  /** `http://127.0.0.1:PORT/` */
  url: string;
  /** The folder whose bare repositories it serves (publish() of git-daemon.ts fills it too). */
  root: string;
  /** The Authorization header a request must carry; undefined serves everyone. */
  authorization: string | undefined;
  /** The Authorization header of every request so far, undefined where there was none. */
  seen: Array<string | undefined>;
  stop(): Promise<void>;
}

/** `basic base64(user:password)`, as git sends it. */
export function basicAuth(user: string, password: string): string {
  return `basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export async function startGitHttp(root: string, authorization?: string): Promise<GitHttpServer> {
  await mkdir(root, { recursive: true });
  const server = createServer((req, res) => {
    state.seen.push(req.headers.authorization);
    // Schemes are case-insensitive; what follows them is not.
    const given = req.headers.authorization?.replace(/^\S+/, (s) => s.toLowerCase());
    if (state.authorization !== undefined && given !== state.authorization.replace(/^\S+/, (s) => s.toLowerCase())) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="kiln test"' }).end('who are you?\n');
      return;
    }
    runBackend(root, req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const state: GitHttpServer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    root,
    authorization,
    seen: [],
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
  return state;
}

/** One request through `git http-backend` (CGI: the request in the environment and on stdin, the response on stdout). */
function runBackend(root: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const child = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: '/nonexistent',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      // Protocol v2 is asked for in a header; a gzip request body is said so in another.
      ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
      ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
      ...(req.headers['content-length'] ? { CONTENT_LENGTH: String(req.headers['content-length']) } : {}),
    },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  req.pipe(child.stdin);
  child.stdin.on('error', () => undefined);
  let head = Buffer.alloc(0);
  let headDone = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (headDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    headDone = true;
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    res.write(head.subarray(end + 4));
  });
  child.on('close', () => {
    if (!headDone) res.writeHead(500).end('git http-backend failed\n');
    else res.end();
  });
}
