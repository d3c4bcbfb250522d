import type { Command } from './command.js';
import { flagString, parseArgs } from './args.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { resolveLocal } from '../image/load.js';

const cmd: Command = {
  summary: 'remove names of local images (kiln prune frees the space)',
  usage: `kiln rmi [flags] REF...

A name removes that name; a digest or id prefix removes every name of that image.

      --root DIR     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [{ name: 'root', kind: 'string' }], 'rmi');
    if (a.positional.length === 0) throw new KilnError('rmi: expected at least one image (kiln rmi REF...)', { exitCode: 2 });
    const store = await openStore(flagString(a, 'root'));
    for (const ref of a.positional) {
      const r = await resolveLocal(store, ref);
      const names = r.name ? [r.name] : (await store.listRefs()).filter((x) => x.digest === r.digest).map((x) => x.name);
      if (names.length === 0) throw new KilnError(`rmi: image ${ref} has no names to remove`);
      for (const n of names) {
        await store.deleteRef(n);
        process.stdout.write(`Untagged: ${n}\n`);
      }
    }
    return 0;
  },
};
export default cmd;
