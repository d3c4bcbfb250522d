// util/coalesce.ts: small pieces gathered into pieces of at least the size asked, the last
// excepted, with every byte in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { coalesce } from '../../src/util/coalesce.js';

test('coalesce: pieces of at least the size, the last one the rest, the bytes unchanged', async () => {
  const small = Array.from({ length: 100 }, (_, i) => randomBytes(1000 + i));
  const out: Buffer[] = [];
  for await (const c of Readable.from(small).pipe(coalesce(16 << 10))) out.push(c as Buffer);
  assert.ok(Buffer.concat(out).equals(Buffer.concat(small)));
  assert.ok(out.length > 1);
  for (const piece of out.slice(0, -1)) assert.ok(piece.length >= 16 << 10, `a piece of ${piece.length}`);
  assert.ok(out.at(-1)!.length > 0);
  const none: Buffer[] = [];
  for await (const c of Readable.from([]).pipe(coalesce())) none.push(c as Buffer);
  assert.deepEqual(none, []);
});
