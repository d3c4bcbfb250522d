// Registry throughput: push and pull of a ~200 MB image through a local `docker-registry`,
// kiln against `skopeo copy` of the same image in the same run, on loopback and (pushes) through
// a proxy that lets uploads through at UPLINK MB/s in all (a registry across a network). Run alone
// with `node dist/bench/registry.js [MB] [UPLINK]`, or call benchRegistry() from a bench driver.

import { execFileSync, spawn } from 'node:child_process';
import { cp, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchRegistry } from '../test/helpers/registry.js';
import { kilnBin } from '../test/helpers/paths.js';
import { throttlingProxy } from './throttling-proxy.js';
import { Store } from '../src/store/store.js';
import { MediaType, type ImageConfigFile, type ImageManifest } from '../src/image/types.js';

export interface RegistryBenchRow {
  tool: 'kiln' | 'skopeo';
  op: 'push' | 'pull';
  /** `loopback`, or the uplink's rate through the throttling proxy. */
  link: string;
  seconds: number;
  mbPerSecond: number;
}

export interface RegistryBenchResult {
  imageBytes: number;
  layers: number;
  rows: RegistryBenchRow[];
}

interface Blob {
  digest: string;
  bytes: Buffer;
}

function blob(bytes: Buffer): Blob {
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, bytes };
}

/** Uncompressed layers of random files: the bytes on the wire are the image size, and no tool wins by compressing. */
async function makeImage(work: string, totalMb: number, layerCount: number): Promise<{ blobs: Blob[]; manifest: Blob }> {
  const layers: Blob[] = [];
  const perLayer = Math.ceil((totalMb * 1024 * 1024) / layerCount);
  for (let i = 0; i < layerCount; i++) {
    const dir = join(work, `layer${i}`);
    await mkdir(dir, { recursive: true });
    for (let off = 0, n = 0; off < perLayer; off += 8 << 20, n++) {
      await writeFile(join(dir, `data-${n}`), randomBytes(Math.min(8 << 20, perLayer - off)));
    }
    const tar = execFileSync('tar', ['-C', dir, '--sort=name', '--numeric-owner', '--mtime=@0', '-cf', '-', '.'], { maxBuffer: 2 ** 31 });
    layers.push(blob(tar));
    await rm(dir, { recursive: true });
  }
  const cfg: ImageConfigFile = {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
  };
  const config = blob(Buffer.from(JSON.stringify(cfg)));
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.bytes.length },
    layers: layers.map((l) => ({ mediaType: MediaType.ociLayer, digest: l.digest, size: l.bytes.length })),
  };
  return { blobs: [config, ...layers], manifest: blob(Buffer.from(JSON.stringify(m))) };
}

/** Seconds the program took. Asynchronous: the throttling proxy runs in this process. */
async function timed(program: string, args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`${program} ${args.join(' ')} failed: ${stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function benchRegistry(opts: { megabytes?: number; layers?: number; uplinkMb?: number } = {}): Promise<RegistryBenchResult> {
  const totalMb = opts.megabytes ?? 200;
  const layerCount = opts.layers ?? 4;
  const uplinkMb = opts.uplinkMb ?? 25;
  const work = await mkdtemp(join(tmpdir(), 'kiln-bench-registry-'));
  const reg = await launchRegistry();
  const proxy = await throttlingProxy(reg.host, { uplinkRate: uplinkMb * 1024 * 1024 });
  try {
    const img = await makeImage(join(work, 'src'), totalMb, layerCount);
    const imageBytes = img.blobs.reduce((n, b) => n + b.bytes.length, 0);

    // The same image as a kiln store and as an OCI layout for skopeo.
    const storeRoot = join(work, 'store-a');
    const store = await Store.open(storeRoot);
    for (const b of [...img.blobs, img.manifest]) await store.writeBlob(b.bytes, b.digest as `sha256:${string}`);
    await store.setRef(`${reg.host}/bench/kiln:1`, img.manifest.digest as `sha256:${string}`);
    const layout = join(work, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    for (const b of [...img.blobs, img.manifest]) await writeFile(join(layout, 'blobs', 'sha256', b.digest.slice(7)), b.bytes);
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: MediaType.ociManifest, digest: img.manifest.digest, size: img.manifest.bytes.length, annotations: { 'org.opencontainers.image.ref.name': '1' } }],
      }),
    );
    img.blobs.length = 0; // let the memory go before the timed runs

    const mb = imageBytes / (1024 * 1024);
    const row = (tool: RegistryBenchRow['tool'], op: RegistryBenchRow['op'], seconds: number, link = 'loopback'): RegistryBenchRow => ({
      tool,
      op,
      link,
      seconds: Math.round(seconds * 1000) / 1000,
      mbPerSecond: Math.round((mb / seconds) * 10) / 10,
    });
    const rows: RegistryBenchRow[] = [];
    // A push keeps the gzip blobs it made: the push through the uplink starts from a copy of the
    // store as the build left it, so it compresses too.
    const uplinkStore = join(work, 'store-uplink');
    await cp(storeRoot, uplinkStore, { recursive: true });
    // Different repositories, so neither tool finds the other's blobs already linked.
    rows.push(row('kiln', 'push', await timed(kilnBin, ['push', '--root', storeRoot, `${reg.host}/bench/kiln:1`])));
    rows.push(row('skopeo', 'push', await timed('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${reg.host}/bench/skopeo:1`])));
    const uplink = `${uplinkMb} MB/s uplink`;
    rows.push(row('kiln', 'push', await timed(kilnBin, ['push', '--root', uplinkStore, `${reg.host}/bench/kiln:1`, `${proxy.host}/bench/kiln-uplink:1`]), uplink));
    rows.push(row('skopeo', 'push', await timed('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${proxy.host}/bench/skopeo-uplink:1`]), uplink));
    rows.push(row('kiln', 'pull', await timed(kilnBin, ['pull', '--root', join(work, 'store-b'), `${reg.host}/bench/kiln:1`])));
    rows.push(row('skopeo', 'pull', await timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/bench/kiln:1`, `oci:${join(work, 'out')}:1`])));
    return { imageBytes, layers: layerCount, rows };
  } finally {
    proxy.close();
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const mb = process.argv[2] ? Number(process.argv[2]) : undefined;
  const uplinkMb = process.argv[3] ? Number(process.argv[3]) : undefined;
  const r = await benchRegistry({ megabytes: mb, uplinkMb });
  process.stdout.write(`image: ${(r.imageBytes / 1048576).toFixed(1)} MB in ${r.layers} layers\n`);
  for (const x of r.rows) process.stdout.write(`${x.tool.padEnd(7)} ${x.op.padEnd(5)} ${x.link.padEnd(16)} ${x.seconds.toFixed(2).padStart(7)} s  ${x.mbPerSecond.toFixed(1).padStart(7)} MB/s\n`);
}
