// An HTTP proxy in front of a loopback registry that behaves like one across a network: blob
// downloads at most `blobRate` bytes a second each, and all upload bodies together at most
// `uplinkRate` (one uplink shared by parallel uploads). For benchmarks, outside node:test.

import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { throttle, type Link } from '../test/helpers/registry.js';

export interface ThrottlingProxy {
  host: string;
  close(): void;
}

export async function throttlingProxy(target: string, rates: { blobRate?: number; uplinkRate?: number }): Promise<ThrottlingProxy> {
  const [host, port] = target.split(':');
  const uplink: Link = { start: Date.now(), sent: 0 };
  const server: Server = createServer((req, res) => {
    const up = request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      const blobGet = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
      if (blobGet && rates.blobRate !== undefined) upRes.pipe(throttle(rates.blobRate)).pipe(res);
      else upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    const upload = (req.method === 'PATCH' || req.method === 'PUT') && /\/blobs\/uploads\//.test(req.url ?? '');
    if (upload && rates.uplinkRate !== undefined) req.pipe(throttle(rates.uplinkRate, uplink)).pipe(up);
    else req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}
