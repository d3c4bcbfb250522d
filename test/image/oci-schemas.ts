// The OCI image-spec schemas from ../shared/conformance, ready to validate what kiln writes.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { conformanceDir } from '../helpers/paths.js';
import { loadOciSchemas, type OciSchemas } from '../../src/image/schema/oci.js';

export const ociSpecDir = join(conformanceDir, 'oci-image-spec');
let cached: Promise<OciSchemas> | undefined;

export function ociSchemas(): Promise<OciSchemas> {
  cached ??= (async () => {
    const m = JSON.parse(await readFile(join(ociSpecDir, 'mediatypes.json'), 'utf8')) as {
      schemaForMediaType: Record<string, string>;
      schemaAliases: Record<string, string[] | string>;
    };
    return loadOciSchemas({ schemaDir: join(ociSpecDir, 'schema'), schemaForMediaType: m.schemaForMediaType, aliases: m.schemaAliases });
  })();
  return cached;
}

/** Fails with every schema error of `doc` as `mediaType`. */
export async function assertValidOci(mediaType: string, doc: unknown, what: string): Promise<void> {
  const errors = (await ociSchemas()).validate(mediaType, typeof doc === 'string' ? doc : Buffer.isBuffer(doc) ? doc.toString('utf8') : JSON.stringify(doc));
  if (errors.length > 0) throw new Error(`${what} is not a valid ${mediaType}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
}
