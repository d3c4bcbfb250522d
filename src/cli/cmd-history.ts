import type { Command } from './command.js';
import { flagBool, flagString, parseArgs } from './args.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { resolveLocal } from '../image/load.js';
import { humanSize, imageInfo, table } from './image-info.js';

const cmd: Command = {
  summary: "show a local image's history, newest step first",
  usage: `kiln history [flags] REF

      --no-trunc     show whole commands
      --json         the history entries as JSON, with each layer's digest and size
      --root DIR     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [{ name: 'no-trunc', kind: 'boolean' }, { name: 'json', kind: 'boolean' }, { name: 'root', kind: 'string' }], 'history');
    if (a.positional.length !== 1) throw new KilnError('history: expected one image (kiln history REF)', { exitCode: 2 });
    const store = await openStore(flagString(a, 'root'));
    const info = await imageInfo(store, (await resolveLocal(store, a.positional[0]!)).digest);
    let layer = 0;
    const entries = (info.config.history ?? []).map((h) => {
      const l = h.empty_layer ? undefined : info.manifest.layers[layer++];
      return { created: h.created ?? '', createdBy: h.created_by ?? '', comment: h.comment ?? '', emptyLayer: h.empty_layer ?? false, layer: l?.digest ?? null, size: l?.size ?? 0 };
    });
    entries.reverse();
    if (flagBool(a, 'json')) {
      process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
      return 0;
    }
    const trunc = (s: string) => (flagBool(a, 'no-trunc') || s.length <= 60 ? s : s.slice(0, 57) + '...');
    const rows = [['CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], ...entries.map((e) => [e.created, trunc(e.createdBy), e.emptyLayer ? '0B' : humanSize(e.size), e.comment])];
    process.stdout.write(table(rows));
    return 0;
  },
};
export default cmd;
