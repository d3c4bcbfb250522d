// A cold build FROM a large base image: how close it comes to the image's download alone.
// A four-layer gzip image (16,000 small text files and some incompressible data, ~150 MB
// unpacked) is pushed to a local `docker-registry`; then, from a fresh store each time,
// `kiln pull` (the download alone) and `kiln build` of `FROM image` + `COPY` are timed, straight
// from the registry and through a proxy that sends each blob at most RATE MB/s (a registry across
// a network). Runs alternate; medians are printed. Run alone with
// `node dist/bench/from-image.js [RATE_MB_PER_S] [RUNS]`, or call benchFromImage().

import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchRegistry } from '../test/helpers/registry.js';
import { throttlingProxy, type ThrottlingProxy } from './throttling-proxy.js';
import { kilnBin } from '../test/helpers/paths.js';
import { Store } from '../src/store/store.js';
import { MediaType, type ImageConfigFile, type ImageManifest } from '../src/image/types.js';

export interface FromImageRow {
  source: string;
  /** `kiln pull` into a fresh store: the download alone. */
  pullSeconds: number;
  /** `kiln build` FROM the image + a COPY, fresh store. */
  buildSeconds: number;
  /** What the build adds to the download: unpacking, and writing the image. */
  buildOverPull: number;
}

export interface FromImageResult {
  layers: number;
  compressedMb: number;
  unpackedMb: number;
  files: number;
  rows: FromImageRow[];
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A layer of `files` text files of 8 KB (base64 of random bytes: gzip keeps ~75%) and `blobMb` of random data. */
async function makeLayer(dir: string, files: number, blobMb: number): Promise<{ tar: Buffer; gz: Buffer }> {
  await mkdir(dir, { recursive: true });
  const text = randomBytes(files * 6144).toString('base64');
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${Math.floor(i / 200)}`);
    if (i % 200 === 0) await mkdir(sub);
    await writeFile(join(sub, `f${i}`), text.slice(i * 8192, (i + 1) * 8192));
  }
  if (blobMb > 0) await writeFile(join(dir, 'blob'), randomBytes(blobMb << 20));
  const tar = execFileSync('tar', ['-C', dir, '--sort=name', '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '-cf', '-', '.'], { maxBuffer: 2 ** 31 });
  const gz = execFileSync('gzip', ['-n', '-c'], { input: tar, maxBuffer: 2 ** 31 });
  await rm(dir, { recursive: true });
  return { tar, gz };
}

/** Seconds `kiln args` took. Asynchronous: the throttling proxy runs in this process. */
async function timed(args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  const child = spawn(kilnBin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`kiln ${args.join(' ')} failed: ${stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (v: number) => Math.round(v * 100) / 100;

export async function benchFromImage(opts: { rateMb?: number; runs?: number } = {}): Promise<FromImageResult> {
  const rate = (opts.rateMb ?? 10) * 1024 * 1024;
  const runs = opts.runs ?? 3;
  const work = await mkdtemp(join(tmpdir(), 'kiln-bench-from-'));
  const reg = await launchRegistry();
  let proxy: ThrottlingProxy | undefined;
  try {
    const specs = [
      { files: 8000, blobMb: 16 },
      { files: 4000, blobMb: 0 },
      { files: 2000, blobMb: 8 },
      { files: 2000, blobMb: 0 },
    ];
    const layers = [];
    for (const [i, s] of specs.entries()) layers.push(await makeLayer(join(work, `layer${i}`), s.files, s.blobMb));
    const cfg: ImageConfigFile = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => sha(l.tar) as `sha256:${string}`) } };
    const config = Buffer.from(JSON.stringify(cfg));
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: sha(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: MediaType.ociLayerGzip, digest: sha(l.gz), size: l.gz.length })),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const src = await Store.open(join(work, 'src'));
    for (const b of [config, manifestBytes, ...layers.map((l) => l.gz)]) await src.writeBlob(b);
    const ref = `${reg.host}/bench/from:1`;
    await src.setRef(ref, sha(manifestBytes) as `sha256:${string}`);
    execFileSync(kilnBin, ['push', '--root', join(work, 'src'), ref], { stdio: 'ignore' });
    await rm(join(work, 'src'), { recursive: true });

    proxy = await throttlingProxy(reg.host, { blobRate: rate });
    const throttled = proxy;
    const ctx = join(work, 'ctx');
    await mkdir(ctx);
    const sources = [
      { source: 'registry on loopback', host: reg.host },
      { source: `through a proxy at ${opts.rateMb ?? 10} MB/s per blob`, host: throttled.host },
    ];
    const rows: FromImageRow[] = [];
    for (const { source, host } of sources) {
      await writeFile(join(ctx, 'Dockerfile'), `FROM ${host}/bench/from:1\nCOPY Dockerfile /copied\n`);
      const pulls: number[] = [];
      const builds: number[] = [];
      for (let i = 0; i < runs; i++) {
        const root = join(work, 'store');
        await rm(root, { recursive: true, force: true });
        pulls.push(await timed(['pull', '--root', root, `${host}/bench/from:1`]));
        await rm(root, { recursive: true, force: true });
        builds.push(await timed(['build', '--root', root, '--progress', 'quiet', ctx]));
      }
      rows.push({ source, pullSeconds: round(median(pulls)), buildSeconds: round(median(builds)), buildOverPull: round(median(builds) - median(pulls)) });
    }
    const unpacked = layers.reduce((n, l) => n + l.tar.length, 0);
    const compressed = layers.reduce((n, l) => n + l.gz.length, 0);
    return {
      layers: layers.length,
      compressedMb: round(compressed / 1048576),
      unpackedMb: round(unpacked / 1048576),
      files: specs.reduce((n, s) => n + s.files + (s.blobMb > 0 ? 1 : 0), 0),
      rows,
    };
  } finally {
    proxy?.close();
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await benchFromImage({ rateMb: process.argv[2] ? Number(process.argv[2]) : undefined, runs: process.argv[3] ? Number(process.argv[3]) : undefined });
  process.stdout.write(`image: ${r.layers} gzip layers, ${r.compressedMb} MB (${r.unpackedMb} MB unpacked, ${r.files} files)\n`);
  for (const x of r.rows) {
    process.stdout.write(`${x.source.padEnd(36)} pull ${x.pullSeconds.toFixed(2)} s  build ${x.buildSeconds.toFixed(2)} s  build - pull ${x.buildOverPull.toFixed(2)} s\n`);
  }
}
