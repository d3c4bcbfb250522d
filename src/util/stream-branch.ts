// A second reader of a stream: a pass-through that also hands every chunk to a side stream,
// waiting for the side to take it (so the side is never buffered without bound). A side that
// fails or is destroyed is dropped, and the main flow goes on without it.

import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { STREAM_PIECE } from './fs.js';

export interface Branch {
  /** Put this in the main flow. */
  stream: Transform;
  /** The same bytes, for the second reader; ends with the main flow, fails when it fails. */
  side: PassThrough;
}

export function branch(highWaterMark = STREAM_PIECE): Branch {
  const side = new PassThrough({ highWaterMark });
  let dropped = false;
  let waiting: (() => void) | undefined;
  const drop = () => {
    dropped = true;
    waiting?.();
  };
  side.on('close', drop);
  side.on('error', drop);
  const stream = new Transform({
    highWaterMark,
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      if (dropped || side.write(chunk)) return cb(null, chunk);
      const go = () => {
        side.off('drain', go);
        waiting = undefined;
        cb(null, chunk);
      };
      waiting = go;
      side.once('drain', go);
    },
    flush(cb: TransformCallback) {
      if (!dropped) side.end();
      cb();
    },
  });
  stream.on('error', (err) => {
    if (!dropped) side.destroy(err);
  });
  stream.on('close', () => {
    // Destroyed before its end (the main flow failed): the side must not wait for more.
    if (!dropped && !side.writableEnded) side.destroy(new Error('the stream it reads from stopped'));
  });
  return { stream, side };
}
