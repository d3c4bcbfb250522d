// ADD of an http(s) URL. The body is streamed into the store's blobs (content-addressed), so
// the cache key can name its digest and the copy can read it back without a second download.
// With --checksum the digest is known up front and a mismatch is an error naming both digests.

import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Digest } from '../../graph/ops.js';
import type { WorkerContext } from '../types.js';
import { KilnError, errorMessage } from '../../util/errors.js';

/** Downloads already made by this process, by URL (and expected digest). */
const fetched = new Map<string, Promise<Digest>>();

export function downloadToBlob(url: string, ctx: WorkerContext, expected?: Digest): Promise<Digest> {
  const key = `${ctx.store.root}\0${url}\0${expected ?? ''}`;
  let p = fetched.get(key);
  if (!p) {
    p = fetchOnce(url, ctx, expected);
    fetched.set(key, p);
    p.catch(() => fetched.delete(key));
  }
  return p;
}

async function fetchOnce(url: string, ctx: WorkerContext, expected?: Digest): Promise<Digest> {
  if (expected && (await ctx.store.hasBlob(expected))) return expected;
  let res: Response;
  try {
    res = await fetch(url, { signal: ctx.signal, redirect: 'follow' });
  } catch (err) {
    throw new KilnError(`ADD ${url}: download failed: ${errorMessage((err as Error).cause ?? err)}`);
  }
  if (!res.ok || !res.body) throw new KilnError(`ADD ${url}: download failed: HTTP ${res.status} ${res.statusText}`);
  try {
    const info = await ctx.store.ingestStream(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), expected);
    return info.digest;
  } catch (err) {
    if (err instanceof KilnError && expected) {
      throw new KilnError(`ADD ${url}: checksum mismatch: --checksum is ${expected} but the download is ${/got (sha256:[0-9a-f]+)/.exec(err.message)?.[1] ?? 'different'}`);
    }
    throw err;
  }
}

/** The file name a URL downloads to: the last component of its path. */
export function fileNameFromUrl(url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    throw new KilnError(`ADD: invalid URL ${url}`);
  }
  const base = decodeURIComponent(path.replace(/\/+$/, '').split('/').pop() ?? '');
  return base === '' || base === '.' || base === '..' ? 'download' : base;
}
