// ADD of an http(s) URL. The body is streamed into the store's blobs (content-addressed), so
// the cache key can name its digest and the copy can read it back without a second download.
// With --checksum the digest is known up front and a mismatch is an error naming both digests.

import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Digest } from '../../graph/ops.js';
import type { WorkerContext } from '../types.js';
import { KilnError, errorMessage } from '../../util/errors.js';
import { hexOf, sha256 } from '../../util/digest.js';
import { mkdir, readFile } from 'node:fs/promises';
import { httpFetch } from '../../util/fetch.js';

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

/** What the last download of a URL returned, so the next build can ask "changed since?". */
interface Validators {
  etag?: string;
  lastModified?: string;
  digest: Digest;
}

function validatorsPath(ctx: WorkerContext, url: string): string {
  return ctx.store.path('filehash', `url-${hexOf(sha256(url))}.json`);
}

async function readValidators(ctx: WorkerContext, url: string): Promise<Validators | undefined> {
  try {
    const v = JSON.parse(await readFile(validatorsPath(ctx, url), 'utf8')) as Validators;
    return (await ctx.store.hasBlob(v.digest)) ? v : undefined;
  } catch {
    return undefined;
  }
}

async function fetchOnce(url: string, ctx: WorkerContext, expected?: Digest): Promise<Digest> {
  if (expected && (await ctx.store.hasBlob(expected))) return expected;
  // Without a checksum the content decides the cache key, so the URL is asked every build;
  // a conditional request keeps that to a 304 when nothing changed (as BuildKit does).
  const known = expected ? undefined : await readValidators(ctx, url);
  const headers: Record<string, string> = {};
  if (known?.etag) headers['if-none-match'] = known.etag;
  if (known?.lastModified) headers['if-modified-since'] = known.lastModified;
  let res: Response;
  try {
    res = await httpFetch(url, { signal: ctx.signal, redirect: 'follow', headers });
  } catch (err) {
    throw new KilnError(`ADD ${url}: download failed: ${errorMessage((err as Error).cause ?? err)}`);
  }
  if (res.status === 304 && known) {
    await res.body?.cancel();
    return known.digest;
  }
  if (!res.ok || !res.body) throw new KilnError(`ADD ${url}: download failed: HTTP ${res.status} ${res.statusText}`);
  let digest: Digest;
  try {
    digest = (await ctx.store.ingestStream(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), expected)).digest;
  } catch (err) {
    if (err instanceof KilnError && expected) {
      throw new KilnError(`ADD ${url}: checksum mismatch: --checksum is ${expected} but the download is ${/got (sha256:[0-9a-f]+)/.exec(err.message)?.[1] ?? 'different'}`);
    }
    throw err;
  }
  const etag = res.headers.get('etag') ?? undefined;
  const lastModified = res.headers.get('last-modified') ?? undefined;
  if (!expected && (etag || lastModified)) {
    await mkdir(ctx.store.path('filehash'), { recursive: true });
    await ctx.store.writeFileAtomic(validatorsPath(ctx, url), JSON.stringify({ etag, lastModified, digest } satisfies Validators));
  }
  return digest;
}

/** The file name a URL downloads to: the last component of its path, else BuildKit's `__unnamed__`. */
export function fileNameFromUrl(url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    throw new KilnError(`ADD: invalid URL ${url}`);
  }
  const base = decodeURIComponent(path.replace(/\/+$/, '').split('/').pop() ?? '');
  return base === '' || base === '.' || base === '..' ? '__unnamed__' : base;
}
