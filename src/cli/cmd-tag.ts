import type { Command } from './command.js';
import { flagString, parseArgs } from './args.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { resolveLocal } from '../image/load.js';
import { normalizeReference } from '../registry/reference.js';

const cmd: Command = {
  summary: 'give a local image another name',
  usage: `kiln tag [flags] SOURCE TARGET

      --root DIR     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [{ name: 'root', kind: 'string' }], 'tag');
    if (a.positional.length !== 2) throw new KilnError('tag: expected SOURCE and TARGET (kiln tag SOURCE TARGET)', { exitCode: 2 });
    const store = await openStore(flagString(a, 'root'));
    const src = await resolveLocal(store, a.positional[0]!);
    const target = normalizeReference(a.positional[1]!, 'tag TARGET');
    if (target.includes('@')) throw new KilnError(`tag: TARGET ${a.positional[1]} may not contain a digest`, { exitCode: 2 });
    await store.setRef(target, src.digest);
    return 0;
  },
};
export default cmd;
