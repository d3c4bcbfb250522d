import type { Command } from './command.js';
import { flagBool, flagString, parseArgs } from './args.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { hexOf } from '../util/digest.js';
import { humanSize, imageInfo, table } from './image-info.js';

const cmd: Command = {
  summary: 'list the images in the local store',
  usage: `kiln images [flags]

      --json         one JSON object per image (name, digest, config, size)
  -q, --quiet        names only
      --root DIR     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [{ name: 'json', kind: 'boolean' }, { name: 'quiet', short: 'q', kind: 'boolean' }, { name: 'root', kind: 'string' }], 'images');
    if (a.positional.length > 0) throw new KilnError('images: takes no arguments', { exitCode: 2 });
    const store = await openStore(flagString(a, 'root'));
    const rows: string[][] = [['NAME', 'DIGEST', 'IMAGE ID', 'SIZE']];
    const json: unknown[] = [];
    for (const ref of await store.listRefs()) {
      if (flagBool(a, 'quiet')) {
        process.stdout.write(`${ref.name}\n`);
        continue;
      }
      try {
        const info = await imageInfo(store, ref.digest);
        json.push({ name: ref.name, digest: ref.digest, config: info.configDigest, size: info.size, updatedAt: ref.updatedAt });
        rows.push([ref.name, hexOf(ref.digest).slice(0, 12), hexOf(info.configDigest).slice(0, 12), humanSize(info.size)]);
      } catch {
        json.push({ name: ref.name, digest: ref.digest, broken: true });
        rows.push([ref.name, hexOf(ref.digest).slice(0, 12), '(missing)', '-']);
      }
    }
    if (flagBool(a, 'quiet')) return 0;
    if (flagBool(a, 'json')) process.stdout.write(json.map((j) => JSON.stringify(j)).join('\n') + (json.length ? '\n' : ''));
    else process.stdout.write(table(rows));
    return 0;
  },
};
export default cmd;
