// OCI annotations of an exported image, as buildx takes them: `--annotation [TYPE:]KEY=VALUE`
// and an output's `annotation.KEY=VALUE` / `annotation-TYPE.KEY=VALUE`. kiln exports one
// platform's manifest and no image index, so only the manifest and, in an OCI layout, its
// descriptor can carry them (as BuildKit refuses index annotations for a single platform).

import { KilnError } from '../util/errors.js';

export interface Annotations {
  /** In the image manifest (its digest changes). */
  manifest: Record<string, string>;
  /** On the manifest's descriptor in an OCI layout's index.json. */
  manifestDescriptor: Record<string, string>;
}

export const noAnnotations = (): Annotations => ({ manifest: {}, manifestDescriptor: {} });

function add(out: Annotations, level: string, key: string, value: string, where: string): void {
  if (key === '') throw new KilnError(`${where}: the annotation has no key`, { exitCode: 2 });
  if (level.includes('[')) {
    throw new KilnError(`${where}: kiln builds one platform; an annotation cannot name one (${level})`, { exitCode: 2 });
  }
  if (level === 'manifest') out.manifest[key] = value;
  else if (level === 'manifest-descriptor') out.manifestDescriptor[key] = value;
  else if (level === 'index' || level === 'index-descriptor') {
    throw new KilnError(`${where}: ${level} annotations are not supported: kiln exports a single platform's manifest, with no image index`, { exitCode: 2 });
  } else throw new KilnError(`${where}: unknown annotation type "${level}" (manifest or manifest-descriptor)`, { exitCode: 2 });
}

/** `[TYPE[,TYPE...]:]KEY=VALUE`; without a type, the manifest. */
export function parseAnnotationFlags(values: string[]): Annotations {
  const out = noAnnotations();
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq < 0) throw new KilnError(`--annotation: expected [TYPE:]KEY=VALUE, got "${v}"`, { exitCode: 2 });
    const left = v.slice(0, eq);
    const colon = left.indexOf(':');
    const levels = colon < 0 ? ['manifest'] : left.slice(0, colon).split(',');
    for (const level of levels) add(out, level.trim(), left.slice(colon + 1), v.slice(eq + 1), '--annotation');
  }
  return out;
}

/** The `annotation*` keys of an --output spec. */
export function annotationsFromAttrs(attrs: Record<string, string>): Annotations {
  const out = noAnnotations();
  for (const [k, v] of Object.entries(attrs)) {
    const m = /^annotation(?:-([^.]+))?\.(.*)$/.exec(k);
    if (!m) {
      if (k.startsWith('annotation')) throw new KilnError(`--output: expected annotation.KEY= or annotation-TYPE.KEY=, got "${k}"`, { exitCode: 2 });
      continue;
    }
    add(out, m[1] ?? 'manifest', m[2]!, v, '--output');
  }
  return out;
}
