// sha256 of a file on disk. A big file is hashed on a worker thread: sha256 runs at ~350 MB/s
// on this machine kind (no SHA extensions), and a build's main thread is its bottleneck (it
// archives one step's layer while setting up the next); the worker runs on another CPU.
// Small files are hashed in place: the message round trip would cost more.

import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { Digest } from '../graph/ops.js';

export interface FileDigest {
  digest: Digest;
  size: number;
}

/** Files at least this big go to the worker. */
const OFF_THREAD_BYTES = 4 << 20;
const PIECE = 1 << 20;

function hashInPlace(path: string): FileDigest {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(PIECE);
    let size = 0;
    for (let n; (n = readSync(fd, buf, 0, PIECE, null)) > 0; size += n) h.update(buf.subarray(0, n));
    return { digest: `sha256:${h.digest('hex')}`, size };
  } finally {
    closeSync(fd);
  }
}

// The worker's whole program (a string: the one-file bundle has no second entry point). It
// hashes whole files, or streams fed chunk by chunk.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const streams = new Map();
parentPort.on('message', (m) => {
  try {
    if (m.op === 'chunk') {
      let h = streams.get(m.id);
      if (!h) streams.set(m.id, (h = createHash('sha256')));
      h.update(m.data);
      return;
    }
    if (m.op === 'end') {
      const h = streams.get(m.id) || createHash('sha256');
      streams.delete(m.id);
      parentPort.postMessage({ id: m.id, digest: 'sha256:' + h.digest('hex') });
      return;
    }
    const h = createHash('sha256');
    const fd = openSync(m.path, 'r');
    const buf = Buffer.allocUnsafe(${PIECE});
    let size = 0;
    try {
      for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; size += n) h.update(buf.subarray(0, n));
    } finally {
      closeSync(fd);
    }
    parentPort.postMessage({ id: m.id, digest: 'sha256:' + h.digest('hex'), size });
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String((err && err.message) || err), code: err && err.code });
  }
});
`;

interface Reply {
  id: number;
  digest?: Digest;
  size?: number;
  error?: string;
  code?: string;
}

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

let worker: Worker | undefined;
let nextId = 0;
const pending = new Map<number, Pending>();

function hasher(): Worker {
  if (worker) return worker;
  const w = new Worker(WORKER_SOURCE, { eval: true });
  w.on('message', (m: Reply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) w.unref(); // an idle worker never keeps kiln from exiting
    if (m.error !== undefined) p.reject(Object.assign(new Error(m.error), { code: m.code }));
    else p.resolve(m);
  });
  w.on('error', (err) => {
    worker = undefined;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  });
  w.unref();
  worker = w;
  return w;
}

/** A request to the worker; its reply settles the promise. */
function ask(message: { op: 'file'; path: string } | { op: 'end' }, id = nextId++): Promise<Reply> {
  const w = hasher();
  const reply = new Promise<Reply>((resolve, reject) => pending.set(id, { resolve, reject }));
  if (pending.size === 1) w.ref();
  w.postMessage({ ...message, id });
  return reply;
}

/** sha256 and size of the file at `path`; `sizeHint` (its size, when known) picks the thread. */
export async function hashFile(path: string, sizeHint = Infinity): Promise<FileDigest> {
  if (sizeHint < PIECE) {
    const data = readFileSync(path);
    return { digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, size: data.length };
  }
  if (sizeHint < OFF_THREAD_BYTES) return hashInPlace(path);
  const r = await ask({ op: 'file', path });
  return { digest: r.digest!, size: r.size! };
}

/**
 * The sha256 of a stream fed chunk by chunk. The first megabytes are kept, not hashed: a
 * stream that ends below OFF_THREAD_BYTES (most layers) is hashed here at the end; a longer one
 * goes to the worker, which then hashes while the rest is still being made.
 */
export function streamHasher(): { update(chunk: Buffer): void; digest(): Promise<FileDigest> } {
  let held: Buffer[] | undefined = [];
  let heldBytes = 0;
  let size = 0;
  const id = nextId++;
  const send = (chunk: Buffer) => {
    // A copy moved (not cloned) to the worker: the caller still writes `chunk` to its file.
    const copy = new Uint8Array(chunk.length);
    copy.set(chunk);
    hasher().postMessage({ op: 'chunk', id, data: copy }, [copy.buffer]);
  };
  return {
    update(chunk) {
      size += chunk.length;
      if (held) {
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes < OFF_THREAD_BYTES) return;
        for (const c of held) send(c);
        held = undefined;
        return;
      }
      send(chunk);
    },
    async digest() {
      if (held) {
        const h = createHash('sha256');
        for (const c of held) h.update(c);
        return { digest: `sha256:${h.digest('hex')}`, size };
      }
      const r = await ask({ op: 'end' }, id);
      return { digest: r.digest!, size };
    },
  };
}
