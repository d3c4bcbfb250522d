// Owner ids of every size survive a build: an LDAP or subordinate uid (a million, say) written by
// a RUN step is the file's owner in the image and in a folder output, as with BuildKit. Ids from
// 262144 to 2097151 used to become 262143 in the layer, and bigger ones in folder outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { busyboxStore, writeTree, BASE_REF } from './fixture.js';

test('big owner ids written by RUN and COPY --chown are kept in the image and a folder output', async () => {
  const root = await busyboxStore();
  const ctx = await tempDir('kiln-ids-');
  await writeTree(ctx, {
    Dockerfile: [
      `FROM ${BASE_REF} AS build`,
      'RUN touch /a /b /c && chown 300000:262144 /a && chown 1000001:2000000 /b && chown 3000000:99999999 /c',
      `FROM ${BASE_REF}`,
      'COPY --from=build /a /b /c /ids/',
      'COPY --chown=500000:600000 f /f',
      '',
    ].join('\n'),
    f: 'f',
  });
  const out = join(await tempDir('kiln-ids-out-'), 'rootfs');
  const r = await runKiln(['build', '--root', root, '--progress', 'quiet', '-o', `type=local,dest=${out}`, ctx]);
  assert.equal(r.code, 0, r.stderr);
  const owner = (p: string) => {
    const st = lstatSync(join(out, p));
    return `${st.uid}:${st.gid}`;
  };
  assert.deepEqual(['ids/a', 'ids/b', 'ids/c', 'f'].map(owner), ['300000:262144', '1000001:2000000', '3000000:99999999', '500000:600000']);
});
