// Every file under a folder with its bytes, gzip layers decompressed: for tests that look for a
// value (a secret) anywhere in a store or an export.

import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export function* filesUnder(dir: string): Generator<[string, Buffer]> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) yield* filesUnder(p);
    else if (st.isFile()) {
      let data = readFileSync(p);
      if (data[0] === 0x1f && data[1] === 0x8b) data = gunzipSync(data);
      yield [p, data];
    }
  }
}
