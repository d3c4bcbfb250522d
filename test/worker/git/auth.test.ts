// Which GIT_AUTH_* secret applies to a remote, the header it makes, and how it reaches git's
// environment: the choices BuildKit makes, checked one by one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envWithAuth, gitAuthFor, redactAuth } from '../../../src/worker/git/auth.js';

const secrets = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, v]) => [k, Buffer.from(v)]));
const header = (remote: string, s: Record<string, string>) => gitAuthFor(remote, secrets(s))?.config;
const basic = (token: string) => `Authorization: basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;

test('the header: the host\'s secret before the generic one, the header secret before the token', () => {
  const remote = 'https://git.example.com:8443/org/repo.git';
  const scope = 'http.https://git.example.com:8443/.extraHeader';
  assert.deepEqual(header(remote, { GIT_AUTH_TOKEN: 'tok' }), [[scope, basic('tok')]]);
  assert.deepEqual(header(remote, { GIT_AUTH_TOKEN: 'tok', GIT_AUTH_HEADER: 'bearer b' }), [[scope, 'Authorization: bearer b']]);
  assert.deepEqual(header(remote, { GIT_AUTH_HEADER: 'bearer b', 'GIT_AUTH_TOKEN.git.example.com': 'host' }), [[scope, basic('host')]]);
  // BuildKit's name holds the port; the name without it serves every port of the host.
  assert.deepEqual(header(remote, { 'GIT_AUTH_TOKEN.git.example.com': 'any', 'GIT_AUTH_TOKEN.git.example.com:8443': 'port' }), [[scope, basic('port')]]);
  assert.deepEqual(header(remote, { 'GIT_AUTH_TOKEN.other.example.com': 'x' }), undefined);
  // A secret file's final newline is not part of the token.
  assert.deepEqual(header(remote, { GIT_AUTH_TOKEN: 'tok\n' }), [[scope, basic('tok')]]);
  assert.throws(() => header(remote, { GIT_AUTH_HEADER: 'bearer a\nX-Evil: 1' }), /--secret GIT_AUTH_HEADER holds a line break/);
});

test('only http(s) remotes get a header', () => {
  const s = { GIT_AUTH_TOKEN: 'tok' };
  for (const remote of ['git://git.example.com/repo.git', 'ssh://git@git.example.com/repo.git', 'git@git.example.com:org/repo.git']) {
    assert.equal(gitAuthFor(remote, secrets(s)), undefined, remote);
  }
  assert.deepEqual(header('http://git.example.com/repo.git', s), [['http.http://git.example.com/.extraHeader', basic('tok')]]);
  assert.equal(gitAuthFor('https://git.example.com/repo.git', new Map()), undefined);
});

test('the environment: after the entries already there; redaction of the token and of its header', () => {
  const auth = gitAuthFor('https://h.example/r.git', secrets({ GIT_AUTH_TOKEN: 'tok-12345' }))!;
  const env = envWithAuth({ GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'protocol.version', GIT_CONFIG_VALUE_0: '0' }, auth);
  assert.deepEqual(env, {
    GIT_CONFIG_COUNT: '2', GIT_CONFIG_KEY_0: 'protocol.version', GIT_CONFIG_VALUE_0: '0',
    GIT_CONFIG_KEY_1: 'http.https://h.example/.extraHeader', GIT_CONFIG_VALUE_1: basic('tok-12345'), GIT_TRACE_REDACT: '1',
  });
  assert.deepEqual(envWithAuth({ A: 'b' }, undefined), { A: 'b' });
  assert.equal(redactAuth(`sent ${basic('tok-12345')} and tok-12345`, auth), 'sent Authorization: basic *** and ***');
  const bearer = gitAuthFor('https://h.example/r.git', secrets({ GIT_AUTH_HEADER: 'Bearer abcdef' }))!;
  assert.equal(redactAuth('Bearer abcdef, abcdef', bearer), '***, ***');
});
