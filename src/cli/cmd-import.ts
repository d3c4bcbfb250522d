import type { Command } from './command.js';
import { flagString, parseArgs } from './args.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { importImages } from '../image/import.js';

const cmd: Command = {
  summary: 'add images from a docker-archive tar, an OCI layout tar, or an OCI layout folder',
  usage: `kiln import [flags] FILE|DIR

Reads what \`docker save\`, \`podman save\`, \`skopeo copy ... oci-archive:\` or \`kiln build
--output type=oci|docker\` write (compressed or not). Images keep the names the archive gives them.

      --name REF     store the (single) image under this name instead
      --root DIR     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [{ name: 'name', kind: 'string' }, { name: 'root', kind: 'string' }], 'import');
    if (a.positional.length !== 1) throw new KilnError('import: expected one archive or folder (kiln import FILE|DIR)', { exitCode: 2 });
    const store = await openStore(flagString(a, 'root'));
    const r = await importImages(store, a.positional[0]!, { name: flagString(a, 'name') });
    for (const img of r.images) {
      if (img.names.length === 0) process.stdout.write(`Loaded image: ${img.digest}\n`);
      for (const n of img.names) process.stdout.write(`Loaded image: ${n} (${img.digest})\n`);
    }
    return 0;
  },
};
export default cmd;
