// Credentials end to end: htpasswd basic auth, bearer tokens from a token server, config.json
// written by kiln login and read the way docker reads it (auths, credHelpers programs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';
import { startRegistry, startTokenServer, completedUploads } from '../helpers/registry.js';
import { Store } from '../../src/store/store.js';
import { fileLayer, imageOf, storeImage } from './fixtures.js';

const users = { alice: 'wonder land', bob: 'builder' };
const basicReg = await startRegistry({ auth: { kind: 'htpasswd', users } });
const tokens = await startTokenServer(users);
const tokenReg = await startRegistry({ auth: { kind: 'token', server: tokens } });
const img = imageOf([await fileLayer('auth', 'secret stuff\n')]);

async function storeRoot(name: string): Promise<string> {
  const root = await tempDir('kiln-store-');
  await storeImage(await Store.open(root), img, name);
  return root;
}

test('basic auth: anonymous push is refused clearly; kiln login saves docker-format credentials that push and pull use', async () => {
  const cfg = await tempDir('kiln-docker-config-');
  const env = { DOCKER_CONFIG: cfg };
  const name = `${basicReg.host}/private/img:1`;
  const root = await storeRoot(name);

  const anon = await runKiln(['push', '--root', root, name], { env });
  assert.equal(anon.code, 1, anon.stderr);
  assert.match(anon.stderr, new RegExp(`registry ${basicReg.host} requires authentication: kiln login ${basicReg.host}`));

  const wrong = await runKiln(['login', basicReg.host, '-u', 'alice', '--password-stdin'], { env, input: 'not it\n' });
  assert.equal(wrong.code, 1, wrong.stderr);
  assert.match(wrong.stderr, /refused the credentials of user "alice"/);
  await assert.rejects(readFile(join(cfg, 'config.json')), 'nothing saved after a failed login');

  const ok = await runKiln(['login', basicReg.host, '-u', 'alice', '--password-stdin'], { env, input: 'wonder land\n' });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'Login Succeeded\n');
  const saved = JSON.parse(await readFile(join(cfg, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
  assert.equal(Buffer.from(saved.auths[basicReg.host]!.auth, 'base64').toString(), 'alice:wonder land');

  const push = await runKiln(['push', '--root', root, name], { env });
  assert.equal(push.code, 0, push.stderr);
  const pullRoot = await tempDir('kiln-store-');
  const pull = await runKiln(['pull', '--root', pullRoot, name], { env });
  assert.equal(pull.code, 0, pull.stderr);
  assert.ok(await (await Store.open(pullRoot)).hasBlob(img.layers[0]!.digest));

  const out = await runKiln(['logout', basicReg.host], { env });
  assert.equal(out.code, 0, out.stderr);
  const after = JSON.parse(await readFile(join(cfg, 'config.json'), 'utf8')) as { auths: Record<string, unknown> };
  assert.equal(after.auths[basicReg.host], undefined);
  const again = await runKiln(['pull', '--root', await tempDir('kiln-store-'), name], { env });
  assert.notEqual(again.code, 0, again.stderr);
  assert.match(again.stderr, /requires authentication/);
});

test('basic auth: wrong credentials already in config.json give a clear error naming the user', async () => {
  const cfg = await tempDir('kiln-docker-config-');
  await writeFile(
    join(cfg, 'config.json'),
    JSON.stringify({ auths: { [`http://${basicReg.host}/v2/`]: { auth: Buffer.from('bob:wrong').toString('base64') } } }),
  );
  const r = await runKiln(['pull', '--root', await tempDir('kiln-store-'), `${basicReg.host}/private/img:1`], { env: { DOCKER_CONFIG: cfg } });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`registry ${basicReg.host} refused the credentials of user "bob"`));
});

test('bearer auth: tokens from the token server with the right scopes; pushing twice uploads nothing', async () => {
  const cfg = await tempDir('kiln-docker-config-');
  const env = { DOCKER_CONFIG: cfg };
  const name = `${tokenReg.host}/team/app:1`;
  const root = await storeRoot(name);

  const login = await runKiln(['login', tokenReg.host, '-u', 'bob', '-p', 'builder'], { env });
  assert.equal(login.code, 0, login.stderr);

  const before = completedUploads(tokenReg.requests()).length;
  const push = await runKiln(['push', '--root', root, name], { env });
  assert.equal(push.code, 0, push.stderr);
  assert.equal(completedUploads(tokenReg.requests()).length - before, 2);
  const scoped = tokens.requests.filter((r) => r.user === 'bob' && r.scopes.includes('repository:team/app:pull,push'));
  assert.ok(scoped.length >= 1, JSON.stringify(tokens.requests));

  const push2 = await runKiln(['push', '--root', root, name], { env });
  assert.equal(push2.code, 0, push2.stderr);
  assert.equal(completedUploads(tokenReg.requests()).length - before, 2);

  const pullRoot = await tempDir('kiln-store-');
  const pull = await runKiln(['pull', '--root', pullRoot, name], { env });
  assert.equal(pull.code, 0, pull.stderr);
  assert.ok(tokens.requests.some((r) => r.user === 'bob' && r.scopes.includes('repository:team/app:pull')));
});

test('bearer auth: wrong password and anonymous access fail clearly', async () => {
  const wrong = await runKiln(['login', tokenReg.host, '-u', 'bob', '--password-stdin'], {
    env: { DOCKER_CONFIG: await tempDir('kiln-docker-config-') },
    input: 'nope',
  });
  assert.equal(wrong.code, 1, wrong.stderr);
  assert.match(wrong.stderr, new RegExp(`registry ${tokenReg.host}: authentication failed for user "bob" \\(token server said 401`));

  const anon = await runKiln(['pull', '--root', await tempDir('kiln-store-'), `${tokenReg.host}/team/app:1`], {
    env: { DOCKER_CONFIG: await tempDir('kiln-docker-config-') },
  });
  assert.equal(anon.code, 1, anon.stderr);
  assert.match(anon.stderr, new RegExp(`registry ${tokenReg.host} refused the credentials \\(none given\\).*kiln login ${tokenReg.host}`));
});

test('credHelpers: a docker-credential-* program supplies the password', async () => {
  const cfg = await tempDir('kiln-docker-config-');
  const bin = join(cfg, 'bin');
  await mkdir(bin);
  // A real helper program speaking docker's protocol: server URL on stdin, JSON on stdout.
  const helper = join(bin, 'docker-credential-kilntest');
  await writeFile(
    helper,
    `#!/bin/sh
read server
echo "$1 $server" >> "${join(cfg, 'helper.log')}"
case "$1" in
  get) if [ "$server" = "${tokenReg.host}" ]; then echo '{"ServerURL":"'"$server"'","Username":"alice","Secret":"wonder land"}'; else echo "credentials not found in native keychain"; exit 1; fi ;;
  *) exit 1 ;;
esac
`,
  );
  await chmod(helper, 0o755);
  await writeFile(join(cfg, 'config.json'), JSON.stringify({ credHelpers: { [tokenReg.host]: 'kilntest' } }));
  const name = `${tokenReg.host}/helper/img:1`;
  const root = await storeRoot(name);
  const r = await runKiln(['push', '--root', root, name], { env: { DOCKER_CONFIG: cfg, PATH: `${bin}:${process.env.PATH}` } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(await readFile(join(cfg, 'helper.log'), 'utf8'), new RegExp(`^get ${tokenReg.host}$`, 'm'));
  assert.ok(tokens.requests.some((q) => q.user === 'alice' && q.scopes.includes('repository:helper/img:pull,push')));
});

test('credsStore: kiln login stores through the helper, pull reads through it, logout erases', async () => {
  const cfg = await tempDir('kiln-docker-config-');
  const bin = join(cfg, 'bin');
  const vault = join(cfg, 'vault');
  await mkdir(bin);
  await mkdir(vault);
  // A file-backed helper: store writes the JSON it is given, get prints it back, erase deletes it.
  const helper = join(bin, 'docker-credential-kilnvault');
  await writeFile(
    helper,
    `#!/bin/sh
set -e
case "$1" in
  store) cat > "${vault}/entry.json"; grep -o '"ServerURL":"[^"]*"' "${vault}/entry.json" | cut -d'"' -f4 > "${vault}/server" ;;
  get) read server || true; if [ -f "${vault}/entry.json" ] && [ "$(cat "${vault}/server")" = "$server" ]; then cat "${vault}/entry.json"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) read server || true; rm -f "${vault}/entry.json" "${vault}/server" ;;
esac
`,
  );
  await chmod(helper, 0o755);
  await writeFile(join(cfg, 'config.json'), JSON.stringify({ credsStore: 'kilnvault', somethingElse: { kept: true } }));
  const env = { DOCKER_CONFIG: cfg, PATH: `${bin}:${process.env.PATH}` };

  const login = await runKiln(['login', basicReg.host, '-u', 'bob', '--password-stdin'], { env, input: 'builder\n' });
  assert.equal(login.code, 0, login.stderr);
  const stored = JSON.parse(await readFile(join(vault, 'entry.json'), 'utf8')) as Record<string, string>;
  assert.deepEqual(stored, { ServerURL: basicReg.host, Username: 'bob', Secret: 'builder' });
  const config = JSON.parse(await readFile(join(cfg, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(config.auths, { [basicReg.host]: {} }, 'no password in config.json');
  assert.deepEqual(config.somethingElse, { kept: true }, 'other settings survive');

  const name = `${basicReg.host}/vault/img:1`;
  const push = await runKiln(['push', '--root', await storeRoot(name), name], { env });
  assert.equal(push.code, 0, push.stderr);

  const out = await runKiln(['logout', basicReg.host], { env });
  assert.equal(out.code, 0, out.stderr);
  await assert.rejects(readFile(join(vault, 'entry.json')));
  const denied = await runKiln(['pull', '--root', await tempDir('kiln-store-'), name], { env });
  assert.equal(denied.code, 1, denied.stderr);
  assert.match(denied.stderr, /requires authentication/);
});
