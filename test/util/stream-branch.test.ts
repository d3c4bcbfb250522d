// util/stream-branch.ts: a second reader of a stream that never loses or reorders bytes, holds
// the main flow back while it is slow, and can be dropped without stopping the main flow.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { branch } from '../../src/util/stream-branch.js';

const pieces = Array.from({ length: 64 }, () => randomBytes(64 << 10));
const whole = Buffer.concat(pieces);

function collect(): { sink: Writable; bytes: () => Buffer } {
  const got: Buffer[] = [];
  return { sink: new Writable({ write: (c: Buffer, _e, cb) => (got.push(c), cb()) }), bytes: () => Buffer.concat(got) };
}

test('branch: the side gets the same bytes as the main flow, even read slowly, and ends with it', async () => {
  const b = branch(256 << 10);
  const main = collect();
  const sideGot: Buffer[] = [];
  const sideRead = (async () => {
    for await (const c of b.side) {
      sideGot.push(c as Buffer);
      await new Promise((r) => setTimeout(r, 1)); // slower than the main flow
    }
  })();
  await pipeline(Readable.from(pieces), b.stream, main.sink);
  await sideRead;
  assert.ok(main.bytes().equals(whole));
  assert.ok(Buffer.concat(sideGot).equals(whole));
});

test('branch: a side that is destroyed midway is dropped and the main flow completes; a main flow that fails fails the side', async () => {
  const b = branch(64 << 10);
  const main = collect();
  let seen = 0;
  b.side.on('data', (c: Buffer) => {
    seen += c.length;
    if (seen > 1 << 20) b.side.destroy();
  });
  await pipeline(Readable.from(pieces), b.stream, main.sink);
  assert.ok(main.bytes().equals(whole));
  assert.ok(seen > 1 << 20 && seen < whole.length);

  const c = branch();
  const source = new PassThrough();
  const failure = new Promise<unknown>((resolve) => c.side.on('error', resolve));
  c.side.resume();
  const flowing = pipeline(source, c.stream, collect().sink).catch((err: unknown) => err);
  source.write(pieces[0]);
  source.destroy(new Error('connection reset'));
  assert.match(String(await flowing), /connection reset/);
  assert.match(String(await failure), /connection reset|stopped/);
});
