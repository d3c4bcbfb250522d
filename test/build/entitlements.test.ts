// BuildKit's entitlements: a Dockerfile cannot take the host's network on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { BASE_REF, busyboxStore, writeTree } from './fixture.js';

test('RUN --network=host needs --allow network.host, and the error names the line', async () => {
  const root = await busyboxStore();
  const ctx = await tempDir('kiln-entitle-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nRUN echo fine\nRUN --network=host echo host > /net\n` });
  const refused = await runKiln(['build', '--root', root, '--progress', 'plain', ctx]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /Dockerfile:3:\d+: RUN --network=host is not allowed without --allow network\.host/);
  assert.doesNotMatch(refused.stderr, /echo fine/, 'nothing ran before the refusal');

  const allowed = await runKiln(['build', '--root', root, '--progress', 'quiet', '--allow', 'network.host', ctx]);
  assert.equal(allowed.code, 0, allowed.stderr);
});

test('--allow takes only known entitlements', async () => {
  const r = await runKiln(['build', '--allow', 'device', '.']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--allow: unknown entitlement "device"/);
});
