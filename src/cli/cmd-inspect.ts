import type { Command } from './command.js';
import { flagString, parseArgs } from './args.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { resolveLocal } from '../image/load.js';
import { imageInfo } from './image-info.js';

const cmd: Command = {
  summary: 'show a local image as JSON (manifest digest, config, layers)',
  usage: `kiln inspect [flags] REF

REF is a name (busybox means docker.io/library/busybox:latest), a digest, or an id prefix.

      --root DIR     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [{ name: 'root', kind: 'string' }], 'inspect');
    if (a.positional.length !== 1) throw new KilnError('inspect: expected one image (kiln inspect REF)', { exitCode: 2 });
    const store = await openStore(flagString(a, 'root'));
    const r = await resolveLocal(store, a.positional[0]!);
    const info = await imageInfo(store, r.digest);
    const names = (await store.listRefs()).filter((x) => x.digest === r.digest).map((x) => x.name);
    const out = {
      name: r.name ?? null,
      names,
      digest: r.digest,
      manifestDigest: info.manifestDigest,
      mediaType: info.manifest.mediaType,
      configDigest: info.configDigest,
      architecture: info.config.architecture,
      os: info.config.os,
      ...(info.config.variant ? { variant: info.config.variant } : {}),
      created: info.config.created,
      size: info.size,
      config: info.config.config ?? {},
      layers: info.manifest.layers.map((l, i) => ({ digest: l.digest, diffId: info.config.rootfs.diff_ids[i], mediaType: l.mediaType, size: l.size })),
      history: info.config.history ?? [],
      manifest: info.manifest,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  },
};
export default cmd;
