import type { Command } from './command.js';
import { flagString, parseArgs } from './args.js';
import { REGISTRY_FLAGS, insecureRegistries, printRegistryEvent } from './registry-flags.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { isDigest } from '../util/digest.js';
import { startPush } from '../registry/push.js';
import { distributable } from '../exporter/index.js';
import { normalizeReference } from '../registry/reference.js';

const cmd: Command = {
  summary: 'upload an image from the local store to a registry',
  usage: `kiln push [flags] REF [TARGET]

  Pushes the stored image named REF (a tag, or a manifest digest) to REF, or to TARGET when given.

      --insecure-registry HOST       allow plain HTTP to HOST (repeatable; loopback hosts always may)
      --root DIR                     the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(argv, [...REGISTRY_FLAGS, { name: 'root', kind: 'string' }], 'push');
    if (a.positional.length < 1 || a.positional.length > 2) {
      throw new KilnError('push: expected an image reference (kiln push REF [TARGET])', { exitCode: 2 });
    }
    const [source, target] = a.positional as [string, string | undefined];
    const store = await openStore(flagString(a, 'root'));
    let digest;
    if (isDigest(source)) {
      if (!target) throw new KilnError('push: pushing a digest needs a TARGET reference', { exitCode: 2 });
      digest = source;
    } else {
      const name = normalizeReference(source, 'push');
      const rec = await store.getRef(name);
      if (!rec) throw new KilnError(`push: no image named ${name} in the store (build it with -t, or kiln pull it)`);
      digest = rec.digest;
    }
    // Stored layers may be uncompressed (kiln build); registries get gzip, each layer uploaded
    // as soon as it is compressed.
    const session = startPush(store, target ?? source, { insecureRegistries: insecureRegistries(a), onEvent: printRegistryEvent });
    let r;
    try {
      r = await session.finish(await distributable(store, digest, 'gzip', (layer) => session.upload(layer)));
    } finally {
      await session.settle();
    }
    process.stderr.write(`pushed ${r.ref}: ${r.uploaded} uploaded, ${r.mounted} mounted, ${r.skipped} already there\n`);
    process.stdout.write(`${r.digest}\n`);
    return 0;
  },
};
export default cmd;
