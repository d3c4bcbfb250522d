// kiln's ssh agent against OpenSSH's own tools: keys that ssh-keygen writes, in each format it
// writes them, are listed by `ssh-add -L` as their .pub files say, and what the agent signs for
// `ssh-keygen -Y sign` verifies; nothing can change the keys it holds.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers/tmp.js';
import { parsePrivateKey } from '../../../src/worker/ssh/keys.js';
import { agentSourceFor } from '../../../src/worker/ssh/source.js';
import { serveAgent } from '../../../src/worker/ssh/agent.js';

let dir: string;

/** The agent answers in this process: its clients must not block the event loop. */
const run = promisify(execFile);
const status = (cmd: string, args: string[], env: NodeJS.ProcessEnv) => run(cmd, args, { env }).then(() => 0, (e: { code?: number }) => e.code ?? -1);

/** `ssh-keygen` flags for each key; the name is the file's. */
const KEYS: Record<string, string[]> = {
  ed25519: ['-t', 'ed25519'],
  'rsa-openssh': ['-t', 'rsa', '-b', '2048'],
  'rsa-pem': ['-t', 'rsa', '-b', '2048', '-m', 'PEM'],
  'ecdsa256-openssh': ['-t', 'ecdsa', '-b', '256'],
  'ecdsa384-pkcs8': ['-t', 'ecdsa', '-b', '384', '-m', 'PKCS8'],
  'ecdsa521-pem': ['-t', 'ecdsa', '-b', '521', '-m', 'PEM'],
};

const pubOf = (name: string) => readFileSync(join(dir, `${name}.pub`), 'utf8').split(' ').slice(0, 2).join(' ');

before(async () => {
  dir = await tempDir('kiln-ssh-agent-');
  for (const [name, flags] of Object.entries(KEYS)) {
    execFileSync('ssh-keygen', ['-q', ...flags, '-N', '', '-C', `comment-${name}`, '-f', join(dir, name)]);
  }
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', join(dir, 'locked')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', 'secret', '-f', join(dir, 'locked-pem')]);
  writeFileSync(join(dir, 'msg'), 'not a key\n');
});

test('each key file parses to the public key of its .pub file, with the comment OpenSSH keeps', () => {
  for (const name of Object.keys(KEYS)) {
    const key = parsePrivateKey(readFileSync(join(dir, name), 'utf8'));
    const [type, b64] = pubOf(name).split(' ');
    assert.equal(key.blob.toString('base64'), b64, name);
    assert.equal(key.blob.subarray(4, 4 + key.blob.readUInt32BE(0)).toString(), type, name);
    // OpenSSH's format keeps the comment; PEM has none.
    assert.equal(key.comment, name.endsWith('openssh') || name === 'ed25519' ? `comment-${name}` : '', name);
  }
});

test('ssh-add lists the keys and ssh-keygen -Y sign signs through the agent; the signatures verify', async () => {
  const names = Object.keys(KEYS);
  const source = agentSourceFor(names.map((n) => join(dir, n)));
  const agent = await serveAgent(source, join(dir, 'keys.sock'), { mode: 0o600, uid: process.getuid!(), gid: process.getgid!() });
  const env = { ...process.env, SSH_AUTH_SOCK: agent.path };
  try {
    const listed = (await run('ssh-add', ['-L'], { env, encoding: 'utf8' })).stdout.trim().split('\n').map((l) => l.split(' ').slice(0, 2).join(' '));
    assert.deepEqual(listed, names.map(pubOf));
    for (const name of names) {
      // Given only the public key, ssh-keygen asks the agent to sign.
      const msg = join(dir, `msg-${name}`);
      writeFileSync(msg, `signed through the agent by ${name}\n`);
      await run('ssh-keygen', ['-Y', 'sign', '-f', join(dir, `${name}.pub`), '-n', 'file', msg], { env });
      writeFileSync(join(dir, 'allowed'), `signer ${pubOf(name)}\n`);
      const verified = spawnSync('ssh-keygen', ['-Y', 'verify', '-f', join(dir, 'allowed'), '-I', 'signer', '-n', 'file', '-s', `${msg}.sig`],
        { input: readFileSync(msg), encoding: 'utf8' });
      assert.equal(verified.status, 0, `${name}: ${verified.stderr}`);
    }
    // The agent is read-only: removing and adding keys fail, and the keys stay.
    assert.notEqual(await status('ssh-add', ['-D'], env), 0);
    assert.notEqual(await status('ssh-add', ['-d', join(dir, 'ed25519.pub')], env), 0);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'extra')]);
    assert.notEqual(await status('ssh-add', [join(dir, 'extra')], env), 0);
    assert.equal((await run('ssh-add', ['-L'], { env, encoding: 'utf8' })).stdout.trim().split('\n').length, names.length);
  } finally {
    agent.close();
  }
});

test('a key with a passphrase, a file that is no key, a missing path and a socket with keys are refused, naming the path', async () => {
  assert.throws(() => agentSourceFor([join(dir, 'locked')]), /locked: the key is protected by a passphrase: add it to an ssh-agent/);
  assert.throws(() => agentSourceFor([join(dir, 'locked-pem')]), /locked-pem: the key is protected by a passphrase/);
  assert.throws(() => agentSourceFor([join(dir, 'msg')]), /msg: not a private key/);
  assert.throws(() => agentSourceFor([join(dir, 'nothing-here')]), /nothing-here: no such file or socket/);
  assert.throws(() => agentSourceFor([dir]), /not an agent socket or a private key file/);
  const agent = await serveAgent({ kind: 'keys', keys: [] }, join(dir, 'mixed.sock'), { mode: 0o600, uid: 0, gid: 0 });
  try {
    assert.throws(() => agentSourceFor([agent.path, join(dir, 'ed25519')]), /one agent socket, or key files, not both/);
    assert.throws(() => agentSourceFor([join(dir, 'ed25519'), agent.path]), /one agent socket, or key files, not both/);
    assert.deepEqual(agentSourceFor([agent.path]), { kind: 'socket', path: agent.path });
  } finally {
    agent.close();
  }
});
