// `kiln build -`: the context comes from standard input, as with docker build (and from a URL's
// body, remote-context.ts). A tar archive (plain or gzip) is the context, with its Dockerfile
// inside; anything else is the Dockerfile itself, with an empty context. Either way the context
// is a folder of the store's tmp/ for the build's duration only.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { KilnError } from '../util/errors.js';
import { removeTree, type Store } from '../store/store.js';
import { extractTar, cleanEntryPath } from '../util/tar/extract.js';
import { forgetFolderDigests } from '../store/filehash-cache.js';

export interface StdinContext {
  dir: string;
  dockerfile: string;
  /** For error messages: the file inside the archive, or `<stdin>`. */
  dockerfileName: string;
  /** Removes the folder and what the store remembers about it. */
  release(): Promise<void>;
}

/** Docker's context kinds kiln recognises by their first bytes. */
function kindOf(data: Buffer): 'gzip' | 'tar' | 'bzip2' | 'xz' | 'text' {
  if (data[0] === 0x1f && data[1] === 0x8b) return 'gzip';
  if (data.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (data.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (data.length >= 512 && data.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  return 'text';
}

async function readAll(input: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}

/**
 * `dockerfileName`: the Dockerfile inside an archive (`-f`, else `Dockerfile`). `origin` names
 * where the bytes come from when it is not standard input (a context URL).
 */
export async function readStdinContext(
  store: Store, dockerfileName: string, input: AsyncIterable<Buffer | string> = process.stdin, origin?: string,
): Promise<StdinContext> {
  const where = origin === undefined ? 'on standard input' : `at ${origin}`;
  let data = await readAll(input);
  let kind = kindOf(data);
  if (kind === 'bzip2' || kind === 'xz') {
    throw new KilnError(`the context ${where} is ${kind}-compressed: kiln reads a plain or gzip tar`, { exitCode: 2 });
  }
  if (kind === 'gzip') {
    try {
      data = gunzipSync(data);
    } catch (err) {
      throw new KilnError(`the context ${where} is not valid gzip: ${(err as Error).message}`, { exitCode: 2 });
    }
    kind = kindOf(data);
    if (kind !== 'tar') throw new KilnError(`the gzip context ${where} is not a tar archive`, { exitCode: 2 });
  }
  const dir = await store.tempDir(origin === undefined ? 'stdin-context' : 'url-context');
  const release = async () => {
    await removeTree(dir);
    await forgetFolderDigests(store, dir);
  };
  try {
    if (kind === 'text') {
      if (dockerfileName !== 'Dockerfile') {
        throw new KilnError(`-f names a Dockerfile inside the context archive, but ${origin ?? 'standard input'} is not a tar archive`, { exitCode: 2 });
      }
      return { dir, dockerfile: data.toString('utf8'), dockerfileName: origin ?? '<stdin>', release };
    }
    await extractTar(Readable.from([data]), dir, { whiteouts: 'apply', label: `the context ${where}` });
    const parts = cleanEntryPath(dockerfileName);
    if (typeof parts === 'string') throw new KilnError(`-f ${dockerfileName}: must name a file inside the context archive (${parts})`, { exitCode: 2 });
    let dockerfile: string;
    try {
      dockerfile = await readFile(join(dir, ...parts), 'utf8');
    } catch {
      throw new KilnError(`the context ${where} has no ${dockerfileName}`, { exitCode: 1 });
    }
    return { dir, dockerfile, dockerfileName, release };
  } catch (err) {
    await release();
    throw err;
  }
}
