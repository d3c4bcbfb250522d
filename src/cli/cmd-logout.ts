import type { Command } from './command.js';
import { parseArgs } from './args.js';
import { KilnError } from '../util/errors.js';
import { removeCredentials } from '../registry/credentials.js';
import { DOCKER_HUB, normalizeRegistryHost } from '../registry/reference.js';

const cmd: Command = {
  summary: 'remove saved credentials for a registry',
  usage: `kiln logout [REGISTRY]

  Removes the credentials kiln login (or docker login) saved for REGISTRY (default Docker Hub).
`,
  async run(argv) {
    const a = parseArgs(argv, [], 'logout');
    if (a.positional.length > 1) throw new KilnError('logout: expected at most one registry', { exitCode: 2 });
    const registry = normalizeRegistryHost(a.positional[0] ?? DOCKER_HUB);
    const removed = await removeCredentials(registry);
    process.stderr.write(removed ? `Removing login credentials for ${registry}\n` : `Not logged in to ${registry}\n`);
    return 0;
  },
};
export default cmd;
