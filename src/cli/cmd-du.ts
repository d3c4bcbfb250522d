import type { Command } from './command.js';
import { flagBool, flagString, parseArgs } from './args.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { storeUsage } from '../store/gc.js';
import { humanSize, table } from './image-info.js';

const cmd: Command = {
  summary: "show the store's disk use by kind",
  usage: `kiln du [flags]

      --json         the figures as JSON
      --root DIR     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [{ name: 'json', kind: 'boolean' }, { name: 'root', kind: 'string' }], 'du');
    if (a.positional.length > 0) throw new KilnError('du: takes no arguments', { exitCode: 2 });
    const store = await openStore(flagString(a, 'root'));
    const usage = await storeUsage(store);
    if (flagBool(a, 'json')) {
      process.stdout.write(JSON.stringify(usage, null, 2) + '\n');
      return 0;
    }
    const total = usage.reduce((n, u) => n + u.bytes, 0);
    process.stdout.write(table([['KIND', 'COUNT', 'SIZE'], ...usage.map((u) => [u.kind, String(u.count), humanSize(u.bytes)]), ['total', '', humanSize(total)]]));
    return 0;
  },
};
export default cmd;
