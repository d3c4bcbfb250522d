// `kiln import`: images from a docker-archive tar (`docker save`), an OCI layout tar, or an OCI
// layout folder, into the store. Archives are unpacked with the safe extractor into tmp/ first;
// every blob is checked against its digest on the way in, and every layer is unpacked (and its
// diffID checked) before any name is set, so a bad archive leaves no image behind.

import { readFile, stat, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Digest } from '../graph/ops.js';
import { normalizeReference } from '../registry/reference.js';
import { removeTree, type Store } from '../store/store.js';
import { KilnError } from '../util/errors.js';
import { extractTar } from '../util/tar/extract.js';
import { openDecompressed, peek, detectCompression } from '../util/tar/filter.js';
import { layerMediaType } from './layers.js';
import { loadImage } from './load.js';
import { MediaType, type Descriptor, type ImageConfigFile, type ImageIndex, type ImageManifest } from './types.js';
import { fileStream, pathExists } from '../util/fs.js';
import { layoutBlobPath } from './oci-layout.js';

export interface ImportedImage {
  /** Manifest (or index) digest the names point at. */
  digest: Digest;
  names: string[];
}

export interface ImportResult {
  format: 'docker-archive' | 'oci-layout';
  images: ImportedImage[];
}

export async function importImages(store: Store, source: string, opts: { name?: string } = {}): Promise<ImportResult> {
  let st;
  try {
    st = await stat(source);
  } catch {
    throw new KilnError(`import: ${source}: no such file or folder`);
  }
  if (st.isDirectory()) return importFromDir(store, resolve(source), source, false, opts);
  const staging = await store.tempDir('import');
  try {
    const dir = join(staging, 'archive');
    await mkdir(dir);
    await extractTar(await openDecompressed(fileStream(source)), dir, { whiteouts: 'apply', label: source });
    return await importFromDir(store, dir, source, true, opts);
  } finally {
    await removeTree(staging);
  }
}

async function readJson<T>(path: string, label: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new KilnError(`${label}: missing ${path.split('/').pop()}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new KilnError(`${label}: ${path.split('/').pop()} is not valid JSON`, { cause: err });
  }
}

async function importFromDir(store: Store, dir: string, label: string, owned: boolean, opts: { name?: string }): Promise<ImportResult> {
  const name = opts.name === undefined ? undefined : normalizeReference(opts.name, '--name');
  if (await pathExists(join(dir, 'manifest.json'))) return importDockerArchive(store, dir, label, owned, name);
  if (await pathExists(join(dir, 'index.json'))) return importOciLayout(store, dir, label, owned, name);
  throw new KilnError(`import: ${label} is neither a docker archive (no manifest.json) nor an OCI layout (no index.json)`);
}

/** A file inside the archive, by a name the archive itself gave: it must stay inside. */
function member(dir: string, rel: string, label: string): string {
  const clean = rel.replace(/^\.\//, '');
  if (clean.startsWith('/') || clean.split('/').includes('..')) throw new KilnError(`${label}: refusing path ${rel} (outside the archive)`);
  return join(dir, clean);
}

/** Moves (our own staging) or copies (a user's folder) a file into blobs/, checking the digest. */
async function ingest(store: Store, path: string, owned: boolean, expected: Digest | undefined, label: string): Promise<{ digest: Digest; size: number }> {
  try {
    if (owned) return await store.ingestFile(path, expected);
    return await store.ingestStream(fileStream(path), expected);
  } catch (err) {
    if (err instanceof KilnError) throw new KilnError(`${label}: ${err.message}`);
    throw new KilnError(`${label}: cannot read ${path.slice(path.lastIndexOf('/') + 1)}: ${(err as Error).message}`, { cause: err });
  }
}

interface DockerArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function importDockerArchive(store: Store, dir: string, label: string, owned: boolean, name?: string): Promise<ImportResult> {
  const entries = await readJson<DockerArchiveEntry[]>(join(dir, 'manifest.json'), label);
  if (!Array.isArray(entries) || entries.length === 0) throw new KilnError(`${label}: manifest.json lists no images`);
  if (name && entries.length > 1) throw new KilnError(`${label}: --name needs an archive with one image (it has ${entries.length})`);
  const images: ImportedImage[] = [];
  for (const e of entries) {
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers)) throw new KilnError(`${label}: manifest.json entry without Config or Layers`);
    const configPath = member(dir, e.Config, label);
    const config = await readJson<ImageConfigFile>(configPath, label);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== e.Layers.length) throw new KilnError(`${label}: image ${e.Config} has ${e.Layers.length} layers but its config lists ${diffIds.length}`);
    const cfg = await ingest(store, configPath, false, undefined, label);
    const layers: Descriptor[] = [];
    const seen = new Map<string, Descriptor>();
    for (const l of e.Layers) {
      const prior = seen.get(l);
      if (prior) {
        layers.push(prior);
        continue;
      }
      const path = member(dir, l, label);
      const { head, stream } = await peek(fileStream(path), 6);
      stream.destroy();
      const kind = detectCompression(head);
      const compression = kind === 'none' ? 'uncompressed' : kind === 'gzip' ? 'gzip' : kind === 'zstd' ? 'zstd' : undefined;
      if (!compression) throw new KilnError(`${label}: layer ${l} is ${kind}-compressed, which image layers cannot be`);
      // A layer shared by two images of one archive is read twice: copy instead of move.
      const blob = await ingest(store, path, false, undefined, label);
      const d: Descriptor = { mediaType: layerMediaType(compression), digest: blob.digest, size: blob.size };
      seen.set(l, d);
      layers.push(d);
    }
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: cfg.digest, size: cfg.size }, layers };
    const m = await store.writeBlob(JSON.stringify(manifest));
    await loadImage(store, m.digest); // unpacks and checks every layer
    const names = name ? [name] : (e.RepoTags ?? []).map((t) => normalizeReference(t, `${label} RepoTags`));
    for (const n of names) await store.setRef(n, m.digest);
    images.push({ digest: m.digest, names });
  }
  return { format: 'docker-archive', images };
}

async function importOciLayout(store: Store, dir: string, label: string, owned: boolean, name?: string): Promise<ImportResult> {
  const layout = await readJson<{ imageLayoutVersion?: string }>(join(dir, 'oci-layout'), label);
  if (typeof layout.imageLayoutVersion !== 'string') throw new KilnError(`${label}: oci-layout has no imageLayoutVersion`);
  const index = await readJson<ImageIndex>(join(dir, 'index.json'), label);
  if (!Array.isArray(index.manifests) || index.manifests.length === 0) throw new KilnError(`${label}: index.json lists no images`);
  if (name && index.manifests.length > 1) {
    const distinct = new Set(index.manifests.map((m) => m.digest));
    if (distinct.size > 1) throw new KilnError(`${label}: --name needs a layout with one image (index.json lists ${distinct.size})`);
  }
  const copied = new Set<string>();
  const copy = async (d: Descriptor, optional: boolean): Promise<Buffer | undefined> => {
    const path = layoutBlobPath(dir, d.digest, label);
    if (optional && !(await pathExists(path))) return undefined;
    if (!copied.has(d.digest)) {
      await ingest(store, path, false, d.digest as Digest, label);
      copied.add(d.digest);
    }
    return d.mediaType.endsWith('json') || d.mediaType.includes('manifest') || d.mediaType.includes('index') ? await store.readBlob(d.digest as Digest) : undefined;
  };
  const copyTree = async (d: Descriptor, optional: boolean): Promise<boolean> => {
    const body = await copy(d, optional);
    if (body === undefined) {
      if (optional) return false;
      throw new KilnError(`${label}: blob ${d.digest} is missing`);
    }
    const doc = JSON.parse(body.toString('utf8')) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
    if (doc.manifests) {
      let any = false;
      for (const m of doc.manifests) any = (await copyTree(m, true)) || any;
      if (!any) throw new KilnError(`${label}: index ${d.digest} has none of its manifests`);
      return true;
    }
    if (!doc.config || !doc.layers) throw new KilnError(`${label}: ${d.digest} is not an image manifest`);
    await copy(doc.config, false);
    for (const l of doc.layers) await copy({ ...l, mediaType: 'layer' }, false);
    return true;
  };
  const images: ImportedImage[] = [];
  for (const m of index.manifests) {
    await copyTree(m, false);
    await loadImage(store, m.digest);
    const names: string[] = [];
    if (name) names.push(name);
    else {
      const full = m.annotations?.['io.containerd.image.name'];
      const refName = m.annotations?.['org.opencontainers.image.ref.name'];
      if (full) names.push(normalizeReference(full, `${label} io.containerd.image.name`));
      else if (refName && /[/:]/.test(refName)) names.push(normalizeReference(refName, `${label} org.opencontainers.image.ref.name`));
    }
    for (const n of names) await store.setRef(n, m.digest as Digest);
    const prior = images.find((i) => i.digest === m.digest);
    if (prior) prior.names.push(...names.filter((n) => !prior.names.includes(n)));
    else images.push({ digest: m.digest as Digest, names });
  }
  void owned;
  return { format: 'oci-layout', images };
}
