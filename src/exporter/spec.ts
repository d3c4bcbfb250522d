// `--output` as buildx spells it: `type=oci,dest=out.tar`, `type=local,dest=dir`, a bare path
// (type=local), or `-` (a tar on stdout). Fields are CSV, so `"name=a,b"` keeps its comma.

import type { LayerCompression } from '../store/store.js';
import { KilnError } from '../util/errors.js';
import { annotationsFromAttrs, noAnnotations, type Annotations } from './annotations.js';

/** `cacheonly` writes nothing: the build fills the cache (and --cache-to) only, as BuildKit's. */
export type OutputType = 'oci' | 'docker' | 'local' | 'tar' | 'image' | 'registry' | 'cacheonly';

export interface OutputSpec {
  type: OutputType;
  /** File or folder; `-` is stdout. Absent only for image/registry. */
  dest?: string;
  /** oci/docker: a tar archive (default) or, with tar=false, a layout folder. */
  tar: boolean;
  compression?: LayerCompression;
  compressionLevel?: number;
  /** Recompress layers already stored with another compression. */
  forceCompression: boolean;
  /** `name=` as given (comma-separated names stay together, as buildx does). */
  name?: string;
  /** The names split out. */
  names: string[];
  /** `push=true` (image type). */
  push: boolean;
  /** image/registry: `store=false` keeps the names out of the local store. */
  store: boolean;
  /** image/registry: `push-by-digest=true` pushes the manifest by its digest, with no tag. */
  pushByDigest: boolean;
  /** image/registry: `registry.insecure=true` (or `insecure=true`) allows plain HTTP to the names' registries. */
  insecure: boolean;
  /** `oci-mediatypes=false` asks for Docker media types in the manifest. */
  ociMediaTypes?: boolean;
  /** `annotation.KEY=`, `annotation-TYPE.KEY=` (and --annotation, merged in by the build). */
  annotations: Annotations;
  /** Every key as written, for exporters that read more. */
  attrs: Record<string, string>;
}

// rewrite-timestamp and oci-artifact are accepted as what kiln does anyway: with
// SOURCE_DATE_EPOCH, files a RUN step wrote are already clamped to it in the layer (BuildKit's
// rewrite-timestamp=true), and kiln makes no attestations for oci-artifact to format.
const IMAGE_ANY = ['rewrite-timestamp', 'oci-artifact'];
const KNOWN: Record<OutputType, string[]> = {
  oci: ['dest', 'tar', 'compression', 'compression-level', 'force-compression', 'name', 'oci-mediatypes', ...IMAGE_ANY],
  docker: ['dest', 'tar', 'compression', 'compression-level', 'force-compression', 'name', 'oci-mediatypes', ...IMAGE_ANY],
  local: ['dest', 'platform-split'],
  tar: ['dest', 'platform-split'],
  image: ['name', 'push', 'push-by-digest', 'insecure', 'registry.insecure', 'compression', 'compression-level', 'force-compression', 'oci-mediatypes', 'unpack', 'store', ...IMAGE_ANY],
  cacheonly: [],
  registry: ['name', 'push', 'push-by-digest', 'insecure', 'registry.insecure', 'compression', 'compression-level', 'force-compression', 'oci-mediatypes', ...IMAGE_ANY],
};

/** Splits one CSV record: commas separate fields except inside double quotes. */
export function splitCsv(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"') {
      if (quoted && text[i + 1] === '"') {
        cur += '"';
        i++;
      } else quoted = !quoted;
    } else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (quoted) throw new KilnError(`--output: unterminated quote in "${text}"`, { exitCode: 2 });
  out.push(cur);
  return out;
}

function bool(key: string, v: string): boolean {
  if (v === 'true' || v === '1' || v === '') return true;
  if (v === 'false' || v === '0') return false;
  throw new KilnError(`--output: ${key} takes true or false, not "${v}"`, { exitCode: 2 });
}

export function parseOutputSpec(text: string): OutputSpec {
  if (text === '-') return { type: 'tar', dest: '-', tar: true, forceCompression: false, names: [], push: false, store: true, pushByDigest: false, insecure: false, annotations: noAnnotations(), attrs: { type: 'tar', dest: '-' } };
  if (!text.includes('=')) {
    if (text === '') throw new KilnError('--output: empty value', { exitCode: 2 });
    return { type: 'local', dest: text, tar: false, forceCompression: false, names: [], push: false, store: true, pushByDigest: false, insecure: false, annotations: noAnnotations(), attrs: { type: 'local', dest: text } };
  }
  const attrs: Record<string, string> = {};
  for (const field of splitCsv(text)) {
    if (field.trim() === '') continue;
    const eq = field.indexOf('=');
    if (eq <= 0) throw new KilnError(`--output: expected key=value, got "${field}"`, { exitCode: 2 });
    // An annotation's own key keeps its case; only the option's name is folded.
    const written = field.slice(0, eq).trim();
    const key = /^annotation/i.test(written) ? written.replace(/^[^.]*/, (name) => name.toLowerCase()) : written.toLowerCase();
    attrs[key] = field.slice(eq + 1);
  }
  const type = attrs.type as OutputType | undefined;
  if (type === undefined) throw new KilnError(`--output: "type=" is required in "${text}"`, { exitCode: 2 });
  if (!(type in KNOWN)) throw new KilnError(`--output: unknown type "${type}" (oci, docker, local, tar, image, registry, cacheonly)`, { exitCode: 2 });
  for (const k of Object.keys(attrs)) {
    const annotated = k.startsWith('annotation') && type !== 'local' && type !== 'tar' && type !== 'cacheonly';
    if (k !== 'type' && !KNOWN[type].includes(k) && !annotated) {
      throw new KilnError(`--output: type=${type} has no option "${k}"`, { exitCode: 2 });
    }
  }
  const spec: OutputSpec = {
    type,
    tar: attrs.tar === undefined ? type !== 'local' : bool('tar', attrs.tar),
    forceCompression: attrs['force-compression'] !== undefined && bool('force-compression', attrs['force-compression']),
    names: (attrs.name ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    push: type === 'registry' || (attrs.push !== undefined && bool('push', attrs.push)),
    store: attrs.store === undefined || bool('store', attrs.store),
    pushByDigest: attrs['push-by-digest'] !== undefined && bool('push-by-digest', attrs['push-by-digest']),
    insecure: ['registry.insecure', 'insecure'].some((k) => attrs[k] !== undefined && bool(k, attrs[k]!)),
    annotations: annotationsFromAttrs(attrs),
    attrs,
  };
  for (const k of ['unpack', ...IMAGE_ANY]) if (attrs[k] !== undefined) bool(k, attrs[k]!);
  if ((type === 'image' || type === 'registry') && Object.keys(spec.annotations.manifestDescriptor).length > 0) {
    throw new KilnError(`--output: type=${type} pushes or stores one manifest, with no descriptor for manifest-descriptor annotations (type=oci or docker have one)`, { exitCode: 2 });
  }
  if (attrs.dest !== undefined) spec.dest = attrs.dest;
  if (attrs.name !== undefined) spec.name = attrs.name;
  if (attrs['oci-mediatypes'] !== undefined) spec.ociMediaTypes = bool('oci-mediatypes', attrs['oci-mediatypes']);
  if (spec.ociMediaTypes === false && Object.keys(spec.annotations.manifest).length > 0) {
    throw new KilnError('--output: annotations need OCI media types (drop oci-mediatypes=false)', { exitCode: 2 });
  }
  if (attrs.compression !== undefined) {
    const c = attrs.compression;
    if (c !== 'gzip' && c !== 'zstd' && c !== 'uncompressed') {
      throw new KilnError(`--output: compression must be gzip, zstd or uncompressed, not "${c}"`, { exitCode: 2 });
    }
    spec.compression = c;
  }
  if (attrs['compression-level'] !== undefined) {
    const n = Number(attrs['compression-level']);
    const max = spec.compression === 'zstd' ? 22 : 9;
    if (!Number.isInteger(n) || n < 0 || n > max) {
      throw new KilnError(`--output: compression-level must be an integer from 0 to ${max}, not "${attrs['compression-level']}"`, { exitCode: 2 });
    }
    spec.compressionLevel = n;
  }
  if ((type === 'oci' || type === 'docker' || type === 'local' || type === 'tar') && (spec.dest === undefined || spec.dest === '')) {
    throw new KilnError(`--output: type=${type} needs dest=`, { exitCode: 2 });
  }
  if (type === 'local' && spec.dest === '-') throw new KilnError('--output: type=local cannot write to stdout (use type=tar)', { exitCode: 2 });
  if (!spec.tar && spec.dest === '-') throw new KilnError(`--output: tar=false cannot write to stdout`, { exitCode: 2 });
  return spec;
}
