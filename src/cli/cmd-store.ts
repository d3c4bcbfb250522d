import type { Command } from './command.js';
import { flagString, parseArgs } from './args.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { verifyStore } from '../store/gc.js';

const cmd: Command = {
  summary: 'check the store: kiln store verify',
  usage: `kiln store verify [flags]

Re-hashes every blob, reads every snapshot's metadata, and follows every name to its manifest,
config and layers. Exits 1 when something is wrong.

      --root DIR     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [{ name: 'root', kind: 'string' }], 'store');
    if (a.positional[0] !== 'verify' || a.positional.length !== 1) throw new KilnError('store: expected a subcommand: kiln store verify', { exitCode: 2 });
    const store = await openStore(flagString(a, 'root'));
    const r = await verifyStore(store);
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    for (const p of r.problems) process.stdout.write(`problem: ${p}\n`);
    process.stdout.write(`checked ${r.blobs} blobs, ${r.snapshots} snapshots, ${r.refs} names: ${r.problems.length === 0 ? 'ok' : `${r.problems.length} problems`}\n`);
    return r.problems.length === 0 ? 0 : 1;
  },
};
export default cmd;
