import type { Command } from './command.js';
import { flagString, parseArgs } from './args.js';
import { REGISTRY_FLAGS, insecureRegistries, printRegistryEvent } from './registry-flags.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { pullImage } from '../registry/pull.js';
import { defaultPlatform, parsePlatform } from '../registry/platform.js';

const cmd: Command = {
  summary: 'fetch an image from a registry into the local store',
  usage: `kiln pull [flags] REF

      --platform OS/ARCH[/VARIANT]   which image of a multi-platform index (default: this machine's)
      --insecure-registry HOST       allow plain HTTP to HOST (repeatable; loopback hosts always may)
      --root DIR                     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [...REGISTRY_FLAGS, { name: 'platform', kind: 'string' }, { name: 'root', kind: 'string' }], 'pull');
    if (a.positional.length !== 1) throw new KilnError('pull: expected one image reference (kiln pull REF)', { exitCode: 2 });
    const p = flagString(a, 'platform');
    const platform = p ? parsePlatform(p) : defaultPlatform();
    const store = await openStore(flagString(a, 'root'));
    const img = await pullImage(store, a.positional[0]!, {
      platform,
      insecureRegistries: insecureRegistries(a),
      onEvent: printRegistryEvent,
    });
    process.stderr.write(`Digest: ${img.digest}\n`);
    process.stderr.write(img.downloaded > 0 ? `Downloaded newer image for ${img.ref}\n` : `Image is up to date for ${img.ref}\n`);
    process.stdout.write(`${img.ref}\n`);
    return 0;
  },
};
export default cmd;
