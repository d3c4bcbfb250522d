// native/build/libkiln-files.so through koffi: batches of file copies (COPY) and file hashes
// (content keys) run on thread-pool threads, one call per batch. Loaded on first use; null when
// the library is not there, and callers do the work in JavaScript.

import { join } from 'node:path';
import { loadKoffi, type NativeFunction } from './koffi.js';
import { packageRoot } from './package-root.js';

export interface NativeFiles {
  /** int kiln_copy_files(jobs, len, err, errlen): see native/files/copyfiles.c. */
  copyFiles: NativeFunction;
  /** int kiln_hash_files(paths, len, out, outlen, err, errlen): see native/files/hashfiles.c. */
  hashFiles: NativeFunction;
}

/** The formats this code speaks (native/files/copyfiles.c, kiln_files_version). */
const FILES_VERSION = 2;

/** kiln_hash_files' answer when the process has no OpenSSL to hash with. */
export const HASH_UNAVAILABLE = -2;

let bound: NativeFiles | null | undefined;

/** Where `npm run build` puts the library. */
export const NATIVE_FILES_PATH = (): string => join(packageRoot(), 'native', 'build', 'libkiln-files.so');

export function nativeFiles(): NativeFiles | null {
  if (bound !== undefined) return bound;
  try {
    const lib = loadKoffi().load(process.env.KILN_NATIVE_FILES ?? NATIVE_FILES_PATH());
    // A library left from an older checkout would read jobs in another layout.
    if (lib.func('int kiln_files_version(void)')() !== FILES_VERSION) throw new Error('libkiln-files.so of another version');
    bound = {
      copyFiles: lib.func('int kiln_copy_files(const uint8_t *jobs, size_t len, uint8_t *err, size_t errlen)'),
      hashFiles: lib.func('int kiln_hash_files(const uint8_t *paths, size_t len, uint8_t *out, size_t outlen, uint8_t *err, size_t errlen)'),
    };
  } catch {
    bound = null;
  }
  return bound;
}

/** Room for the message a failed call leaves. */
const ERROR_BYTES = 4096;

/**
 * Calls `fn` on a thread-pool thread with `args`, then an error buffer and its size (the
 * library's calling convention): its result, and the message it left when it failed.
 */
export function callNative(fn: NativeFunction, ...args: unknown[]): Promise<{ result: number; message: string }> {
  const err = Buffer.alloc(ERROR_BYTES);
  return new Promise((resolve, reject) => {
    fn.async(...args, err, err.length, (callErr: unknown, result: number) => {
      if (callErr) reject(callErr instanceof Error ? callErr : new Error(String(callErr)));
      else {
        const end = err.indexOf(0);
        resolve({ result, message: err.toString('utf8', 0, end < 0 ? err.length : end) });
      }
    });
  });
}
