// The OCI image-spec schemas, keyed by media type, plus the checks the reference validator makes
// in Go beyond the schemas (digest encodings, `data` as padded base64, Env as KEY=VALUE).
// The schema files are read from a folder the caller names (tests use ../shared/conformance).

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SchemaSet, type Json, type SchemaError } from './validator.js';

export interface OciSchemas {
  /** Errors for `document` (text or parsed JSON) as the given media type; [] when valid. */
  validate(mediaType: string, document: string | Json): SchemaError[];
}

export interface OciSchemaSource {
  /** The folder with the image-spec's schema/*.json. */
  schemaDir: string;
  /** media type -> schema file (`schema/config-schema.json` or just the file name). */
  schemaForMediaType: Record<string, string>;
  /** schema file -> the URLs it must also answer to. */
  aliases: Record<string, string[] | string>;
}

export async function loadOciSchemas(src: OciSchemaSource): Promise<OciSchemas> {
  const set = new SchemaSet();
  for (const f of (await readdir(src.schemaDir)).filter((n) => n.endsWith('.json'))) {
    const schema = JSON.parse(await readFile(join(src.schemaDir, f), 'utf8')) as Json;
    set.add(f, schema);
    const alias = src.aliases[f];
    for (const url of Array.isArray(alias) ? alias : []) set.add(url, schema);
  }
  return {
    validate(mediaType, document) {
      const file = src.schemaForMediaType[mediaType];
      if (!file) return [{ path: '/', message: `no schema for media type ${mediaType}` }];
      let doc: Json;
      if (typeof document === 'string') {
        try {
          doc = JSON.parse(document) as Json;
        } catch (err) {
          return [{ path: '/', message: `not JSON: ${(err as Error).message}` }];
        }
      } else doc = document;
      const errors = set.validate(file.slice(file.lastIndexOf('/') + 1), doc);
      return errors.length > 0 ? errors : extraChecks(mediaType, doc);
    },
  };
}

const ENCODED: Record<string, RegExp> = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ };

/** What image-spec's Go validator checks beyond the schema. */
export function extraChecks(mediaType: string, doc: Json): SchemaError[] {
  const errors: SchemaError[] = [];
  const visitDescriptor = (d: Json | undefined, path: string) => {
    if (typeof d !== 'object' || d === null || Array.isArray(d)) return;
    if (typeof d.digest === 'string') {
      const [alg, enc] = [d.digest.slice(0, d.digest.indexOf(':')), d.digest.slice(d.digest.indexOf(':') + 1)];
      const re = ENCODED[alg];
      if (re && !re.test(enc)) errors.push({ path: `${path}/digest`, message: `bad ${alg} encoding` });
    }
    if (Array.isArray(d.urls)) {
      d.urls.forEach((u, i) => {
        if (typeof u !== 'string' || !/^[a-z][a-z0-9+.-]*:/i.test(u)) errors.push({ path: `${path}/urls/${i}`, message: 'not a URI' });
      });
    }
    if (typeof d.data === 'string' && !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(d.data)) {
      errors.push({ path: `${path}/data`, message: 'not padded base64' });
    }
  };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return errors;
  if (mediaType.endsWith('descriptor.v1+json')) visitDescriptor(doc, '');
  if (mediaType.endsWith('manifest.v1+json')) {
    visitDescriptor(doc.config, '/config');
    if (Array.isArray(doc.layers)) doc.layers.forEach((l, i) => visitDescriptor(l, `/layers/${i}`));
    visitDescriptor(doc.subject, '/subject');
  }
  if (mediaType.endsWith('index.v1+json') && Array.isArray(doc.manifests)) doc.manifests.forEach((m, i) => visitDescriptor(m, `/manifests/${i}`));
  if (mediaType.endsWith('config.v1+json')) {
    const cfg = doc.config;
    if (typeof cfg === 'object' && cfg !== null && !Array.isArray(cfg) && Array.isArray(cfg.Env)) {
      cfg.Env.forEach((e, i) => {
        if (typeof e !== 'string' || !/^[^=]+=.*$/s.test(e)) errors.push({ path: `/config/Env/${i}`, message: 'not KEY=VALUE' });
      });
    }
  }
  return errors;
}
