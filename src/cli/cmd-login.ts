import type { Command } from './command.js';
import { flagBool, flagString, parseArgs } from './args.js';
import { REGISTRY_FLAGS, insecureRegistries } from './registry-flags.js';
import { KilnError } from '../util/errors.js';
import { RegistryClient } from '../registry/client.js';
import { saveCredentials } from '../registry/credentials.js';
import { DOCKER_HUB, normalizeRegistryHost } from '../registry/reference.js';

const cmd: Command = {
  summary: 'check and save credentials for a registry (docker config.json format)',
  usage: `kiln login [flags] [REGISTRY]

  Saves to $DOCKER_CONFIG/config.json (default ~/.docker), or to the configured credential helper.
  REGISTRY defaults to Docker Hub.

  -u, --username USER                the user name
  -p, --password PASS                the password (visible in the process list: prefer --password-stdin)
      --password-stdin               read the password from standard input
      --insecure-registry HOST       allow plain HTTP to HOST (repeatable; loopback hosts always may)
`,
  async run(argv) {
    const a = parseArgs(
      argv,
      [
        ...REGISTRY_FLAGS,
        { name: 'username', short: 'u', kind: 'string' },
        { name: 'password', short: 'p', kind: 'string' },
        { name: 'password-stdin', kind: 'boolean' },
      ],
      'login',
    );
    if (a.positional.length > 1) throw new KilnError('login: expected at most one registry', { exitCode: 2 });
    const registry = normalizeRegistryHost(a.positional[0] ?? DOCKER_HUB);
    const username = flagString(a, 'username');
    let password = flagString(a, 'password');
    if (flagBool(a, 'password-stdin')) {
      if (password !== undefined) throw new KilnError('login: --password and --password-stdin are mutually exclusive', { exitCode: 2 });
      if (username === undefined) throw new KilnError('login: --password-stdin needs --username', { exitCode: 2 });
      password = (await readStdin()).replace(/\r?\n$/, '');
    }
    if (username === undefined || username === '') throw new KilnError('login: a user name is needed (-u USER)', { exitCode: 2 });
    if (password === undefined || password === '') {
      throw new KilnError('login: a password is needed (--password-stdin, reading it from standard input)', { exitCode: 2 });
    }
    // Check before saving, as docker does: a typo should fail now, not at the next push.
    const client = new RegistryClient(registry, { insecureRegistries: insecureRegistries(a), credentials: { username, password } });
    await client.checkLogin();
    const where = await saveCredentials(registry, { username, password });
    process.stderr.write(`credentials saved in ${where}\n`);
    process.stdout.write('Login Succeeded\n');
    return 0;
  },
};
export default cmd;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}
