import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { Digest } from '../../graph/ops.js';

/** A pass-through that hashes and counts what flows through it (a layer's diffID and size). */
export function hashingPassThrough(): { stream: Transform; digest(): Digest; size(): number } {
  const hash = createHash('sha256');
  let size = 0;
  let digest: Digest | undefined;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return {
    stream,
    digest: () => (digest ??= `sha256:${hash.digest('hex')}`),
    size: () => size,
  };
}
