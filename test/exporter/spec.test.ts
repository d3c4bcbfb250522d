import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseOutputSpec, writeIidFile, writeMetadataFile } from '../../src/exporter/index.js';
import { KilnError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/tmp.js';

const ok: Array<[string, Partial<ReturnType<typeof parseOutputSpec>>]> = [
  ['type=oci,dest=out.tar', { type: 'oci', dest: 'out.tar', tar: true, names: [] }],
  ['type=oci,dest=dir,tar=false', { type: 'oci', dest: 'dir', tar: false }],
  ['type=docker,dest=x.tar,name=a/b:1', { type: 'docker', name: 'a/b:1', names: ['a/b:1'] }],
  ['type=docker,dest=x.tar,"name=a:1,b:2"', { names: ['a:1', 'b:2'], name: 'a:1,b:2' }],
  ['type=local,dest=out', { type: 'local', dest: 'out', tar: false }],
  ['out-dir', { type: 'local', dest: 'out-dir' }],
  ['-', { type: 'tar', dest: '-' }],
  ['type=tar,dest=fs.tar', { type: 'tar', dest: 'fs.tar' }],
  ['type=oci,dest=o.tar,compression=zstd,compression-level=19,force-compression=true', { compression: 'zstd', compressionLevel: 19, forceCompression: true }],
  ['type=oci,dest=o.tar,compression=uncompressed', { compression: 'uncompressed' }],
  ['type=oci,dest=o.tar,oci-mediatypes=false', { ociMediaTypes: false }],
  ['type=registry,name=localhost:5000/x', { type: 'registry', push: true, names: ['localhost:5000/x'] }],
  ['type=image,name=x,push=true', { type: 'image', push: true }],
  // BuildKit's reproducible-build recipe and attestation layout: what kiln does anyway.
  ['type=registry,name=x,rewrite-timestamp=true', { type: 'registry' }],
  ['type=docker,dest=x.tar,oci-artifact=true,rewrite-timestamp=false', { type: 'docker' }],
];

test('parseOutputSpec accepts buildx spellings', () => {
  for (const [text, want] of ok) {
    const got = parseOutputSpec(text);
    for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof typeof got], v, `${text}: ${k}`);
  }
});

const bad: Array<[string, RegExp]> = [
  ['type=oci', /type=oci needs dest=/],
  ['type=zip,dest=x', /unknown type "zip"/],
  ['dest=x', /"type=" is required/],
  ['type=oci,dest=x,compression=lz4', /compression must be gzip, zstd or uncompressed, not "lz4"/],
  ['type=oci,dest=x,compression=gzip,compression-level=12', /compression-level must be an integer from 0 to 9/],
  ['type=oci,dest=x,tar=maybe', /tar takes true or false/],
  ['type=oci,dest=x,rewrite-timestamp=yes please', /rewrite-timestamp takes true or false/],
  ['type=local,dest=x,rewrite-timestamp=true', /type=local has no option "rewrite-timestamp"/],
  ['type=local,dest=x,compression=gzip', /type=local has no option "compression"/],
  ['type=local,dest=-', /cannot write to stdout/],
  ['type=oci,dest=x,oops', /expected key=value, got "oops"/],
  ['type=oci,"dest=x', /unterminated quote/],
];

test('parseOutputSpec errors name the problem and exit 2', () => {
  for (const [text, re] of bad) {
    assert.throws(() => parseOutputSpec(text), (err: unknown) => err instanceof KilnError && err.exitCode === 2 && re.test(err.message), text);
  }
});

test('iidfile and metadata file carry the digests buildx writes', async () => {
  const dir = await tempDir();
  const r = { manifestDigest: 'sha256:' + 'a'.repeat(64), configDigest: 'sha256:' + 'b'.repeat(64), names: ['docker.io/library/x:1'], descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:' + 'a'.repeat(64), size: 10 } };
  await writeIidFile(join(dir, 'iid'), r);
  assert.equal(await readFile(join(dir, 'iid'), 'utf8'), r.configDigest);
  await writeIidFile(join(dir, 'iid2'), { ...r, pushed: true });
  assert.equal(await readFile(join(dir, 'iid2'), 'utf8'), r.manifestDigest);
  await writeMetadataFile(join(dir, 'm.json'), r);
  const m = JSON.parse(await readFile(join(dir, 'm.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(m['containerimage.digest'], r.manifestDigest);
  assert.equal(m['containerimage.config.digest'], r.configDigest);
  assert.equal(m['image.name'], 'docker.io/library/x:1');
  assert.deepEqual(m['containerimage.descriptor'], r.descriptor);
});
