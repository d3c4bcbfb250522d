import type { Command } from './command.js';
import { flagList, flagString, parseArgs } from './args.js';
import { openStore } from './open-store.js';
import { KilnError } from '../util/errors.js';
import { resolveLocal } from '../image/load.js';
import { exportImage, parseOutputSpec, writeIidFile, writeMetadataFile } from '../exporter/index.js';

const cmd: Command = {
  summary: 'write a local image out (OCI or docker archive, layout folder, filesystem)',
  usage: `kiln export [flags] REF

  -o, --output SPEC          as \`kiln build --output\` (repeatable):
                               type=oci,dest=X.tar | type=oci,dest=DIR,tar=false |
                               type=docker,dest=X.tar | type=local,dest=DIR | type=tar,dest=X.tar
                               options: name=REF, compression=gzip|zstd|uncompressed,
                               compression-level=N, force-compression=true, oci-mediatypes=false
      --iidfile FILE         write the image id (config digest)
      --metadata-file FILE   write buildx-style metadata (containerimage.digest, ...)
      --root DIR             the store (default: KILN_ROOT or cache/ in the checkout)
`,
  async run(argv) {
    const a = parseArgs(
      argv,
      [
        { name: 'output', short: 'o', kind: 'list' },
        { name: 'iidfile', kind: 'string' },
        { name: 'metadata-file', kind: 'string' },
        { name: 'root', kind: 'string' },
      ],
      'export',
    );
    if (a.positional.length !== 1) throw new KilnError('export: expected one image (kiln export REF -o SPEC)', { exitCode: 2 });
    const specs = flagList(a, 'output').map((t) => parseOutputSpec(t));
    if (specs.length === 0) throw new KilnError('export: --output is required', { exitCode: 2 });
    const store = await openStore(flagString(a, 'root'));
    const r = await resolveLocal(store, a.positional[0]!);
    let last;
    for (const spec of specs) last = await exportImage(store, r.digest, spec, { names: r.name ? [r.name] : [] });
    const iid = flagString(a, 'iidfile');
    const meta = flagString(a, 'metadata-file');
    if (last && iid) await writeIidFile(iid, last);
    if (last && meta) await writeMetadataFile(meta, last);
    if (last) process.stderr.write(`exported ${last.manifestDigest}\n`);
    return 0;
  },
};
export default cmd;
