// NODE_EXTRA_CA_CERTS: bin/kiln keeps Node from loading it at start-up (it costs more than the
// rest of a cached build), and kiln adds the certificates when it opens a TLS connection.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runKiln, runProgram } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { makeTestCertificates, startRegistry, type TestRegistry } from '../helpers/registry.js';

const certs = makeTestCertificates(await tempDir('kiln-ca-'));
const reg: TestRegistry = await startRegistry({ tls: certs });

async function builtImage(tag: string): Promise<string> {
  const ctx = await tempDir('kiln-ctx-');
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello /hello\n');
  await writeFile(join(ctx, 'hello'), 'hello over TLS\n');
  const root = await tempDir('kiln-store-');
  const b = await runKiln(['build', '--root', root, '--progress', 'quiet', '-t', tag, ctx]);
  assert.equal(b.code, 0, b.stderr);
  return root;
}

const manifestPuts = () => reg.requests().filter((r) => r.method === 'PUT' && r.uri.includes('/manifests/') && r.status === 201);

test('start-up does not read NODE_EXTRA_CA_CERTS', async () => {
  const missing = join(await tempDir('kiln-ca-'), 'no-such-bundle.pem');
  // Node itself reads the file before any code runs, and says so when it cannot.
  const node = await runProgram(process.execPath, ['-e', '0'], { env: { NODE_EXTRA_CA_CERTS: missing } });
  assert.match(node.stderr, /Ignoring extra certs/);
  const kiln = await runKiln(['version'], { env: { NODE_EXTRA_CA_CERTS: missing } });
  assert.equal(kiln.code, 0, kiln.stderr);
  assert.equal(kiln.stderr, '');
});

test('a push over TLS trusts the authority NODE_EXTRA_CA_CERTS names, and only then', async () => {
  const tag = `${reg.host}/tls/hello:1`;
  const root = await builtImage(tag);

  const untrusted = await runKiln(['push', '--root', root, tag], { env: { NODE_EXTRA_CA_CERTS: undefined } });
  assert.notEqual(untrusted.code, 0);
  assert.match(untrusted.stderr, /cannot reach registry 127\.0\.0\.1:\d+: \S*(CERT|SELF_SIGNED|UNABLE_TO)\S* .*NODE_EXTRA_CA_CERTS=FILE/);
  assert.equal(manifestPuts().length, 0);

  const trusted = await runKiln(['push', '--root', root, tag], { env: { NODE_EXTRA_CA_CERTS: certs.caFile } });
  assert.equal(trusted.code, 0, trusted.stderr);
  assert.equal(manifestPuts().length, 1);
  assert.match(trusted.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
});

test('a missing NODE_EXTRA_CA_CERTS file gets Node\'s warning when kiln connects', async () => {
  const tag = `${reg.host}/tls/missing:1`;
  const root = await builtImage(tag);
  const missing = join(await tempDir('kiln-ca-'), 'no-such-bundle.pem');
  const r = await runKiln(['push', '--root', root, tag], { env: { NODE_EXTRA_CA_CERTS: missing } });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Ignoring extra certs from `[^`]*no-such-bundle\.pem`, load failed/);
});
