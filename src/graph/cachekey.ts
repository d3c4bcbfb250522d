// Cache keys: the sha256 of an op's canonical JSON joined with its inputs' keys and, for ops
// that read files (COPY, ADD, bind mounts), the checksum of exactly the files they select.
// Identical keys mean identical results, so anything that does not change the result stays
// out: secret contents, resource limits, proxy variables, mtimes.

import type { Digest, ExecOp, FileOp, Op } from './ops.js';
import { canonicalJson, sha256 } from '../util/digest.js';

/**
 * Bump when the meaning of a key changes, or the results stored under it were wrong, so old
 * records stop matching (4: layers keep modes of 0, owner ids over 262143 and mtimes after
 * 2038, which they wrote wrong).
 */
const KEY_VERSION = 4;

/**
 * Bump when what kiln extracts from an archive changes: only steps that extract one (ADD, ADD
 * --unpack of a URL) and those after them stop matching, not every step of every build (1: an
 * archive ends at its two zero blocks, as in Docker; before, what followed was read on. 2:
 * --chmod leaves an archive's modes alone, as in BuildKit. 3: the reader reads as Go's does:
 * global PAX headers ignored, links and folders without a body, PAX mtimes, GNU long names
 * over PAX paths).
 */
const ARCHIVE_READER_VERSION = 3;

export function cacheKey(op: Op, inputKeys: Digest[], contentKeys: Digest[] = []): Digest {
  return sha256(canonicalJson({ v: KEY_VERSION, op: keyedOp(op), inputs: inputKeys, content: contentKeys }));
}

/** The part of an op that decides its result. */
export function keyedOp(op: Op): unknown {
  switch (op.kind) {
    case 'exec':
      return keyedExec(op);
    case 'source.image':
      // The digest pins the content; the name it was reached by does not matter.
      return { kind: op.kind, digest: op.digest, platform: op.platform };
    case 'source.context':
      return { kind: op.kind, name: op.name };
    case 'file':
      return extractsArchives(op) ? { ...op, archiveReader: ARCHIVE_READER_VERSION } : op;
    default:
      return op;
  }
}

function keyedExec(op: ExecOp): unknown {
  const proxy = new Set(op.proxyEnv ?? []);
  const env = op.env.filter((e) => !proxy.has(e.slice(0, e.indexOf('=') >>> 0)));
  const { proxyEnv: _omit, ...rest } = op;
  return { ...rest, env };
}

function extractsArchives(op: FileOp): boolean {
  return op.actions.some((a) => (a.action === 'copy' && a.add && a.unpack !== false) || (a.action === 'download' && a.unpack === true));
}
