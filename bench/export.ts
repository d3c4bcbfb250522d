// Export throughput: an image with one ~1 GB layer written as an OCI archive, uncompressed and
// gzip, against GNU `tar` and `tar | pigz` (and `tar | gzip`) on the same files in the same run.
// Run alone with `node dist/bench/export.js [MB]`, or call benchExport() from a bench driver.
//
// kiln's figure covers what a build's export does after the last step: archive the snapshot
// (tar + diffID hash + compression into the store, once), then write the OCI archive.

import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store, type LayerCompression } from '../src/store/store.js';
import { writeImage } from '../src/image/assemble.js';
import { exportImage, parseOutputSpec } from '../src/exporter/index.js';

export interface ExportBenchRow {
  tool: string;
  compression: 'none' | 'gzip';
  seconds: number;
  mbPerSecond: number;
  outputMb: number;
}

export interface ExportBenchResult {
  layerMb: number;
  files: number;
  rows: ExportBenchRow[];
}

/** 8 MB files, half random and half text, so that compression has work to do but cannot vanish it. */
async function fillLayer(dir: string, totalMb: number): Promise<number> {
  const text = Buffer.from('kiln exports layers deterministically; this line repeats to be compressible.\n'.repeat(60000)).subarray(0, 4 << 20);
  let n = 0;
  for (let mb = 0; mb < totalMb; mb += 8, n++) {
    const sub = join(dir, `d${Math.floor(n / 16)}`);
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `f${n}`), Buffer.concat([randomBytes(4 << 20), text]).subarray(0, Math.min(8, totalMb - mb) << 20));
  }
  return n;
}

function timedShell(script: string): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${script}: ${r.stderr.toString()}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function benchExport(opts: { megabytes?: number } = {}): Promise<ExportBenchResult> {
  const totalMb = opts.megabytes ?? 1024;
  const work = await mkdtemp(join(tmpdir(), 'kiln-bench-export-'));
  try {
    const storeRoot = join(work, 'store');
    const store = await Store.open(storeRoot);
    const staging = await store.tempDir('bench');
    const files = await fillLayer(join(staging, 'fs'), totalMb);
    await store.commitSnapshot('bench-layer', join(staging, 'fs'), { source: 'file' });
    await rm(staging, { recursive: true, force: true });
    const fs = store.snapshotFs('bench-layer');
    const out = join(work, 'out');
    await mkdir(out);
    spawnSync('sync');

    const rows: ExportBenchRow[] = [];
    const row = async (tool: string, compression: ExportBenchRow['compression'], seconds: number, file: string) => {
      const bytes = (await stat(file)).size;
      rows.push({ tool, compression, seconds: round(seconds), mbPerSecond: round(totalMb / seconds, 1), outputMb: round(bytes / 1048576, 1) });
      await rm(file, { force: true });
    };

    const kiln = async (compression: LayerCompression) => {
      // A fresh start: no layer blob made before, as after the build step that made the snapshot.
      await store.updateSnapshotMeta('bench-layer', { diffId: undefined, blobs: {}, size: undefined, tarEpoch: undefined });
      for (const d of await store.listBlobs()) await rm(store.blobPath(d), { force: true });
      const dest = join(out, `kiln-${compression}.tar`);
      const t0 = process.hrtime.bigint();
      const img = await writeImage(store, { layers: ['bench-layer'], config: { architecture: 'amd64', os: 'linux' }, compression });
      // The archive keeps the layers as stored: an OCI export gzips by default.
      await exportImage(store, img.manifestDigest, parseOutputSpec(`type=oci,dest=${dest},compression=${compression}`));
      await row('kiln (oci archive)', compression === 'gzip' ? 'gzip' : 'none', Number(process.hrtime.bigint() - t0) / 1e9, dest);
    };

    await kiln('uncompressed');
    await row('tar', 'none', timedShell(`tar --numeric-owner -cf '${out}/t.tar' -C '${fs}' .`), join(out, 't.tar'));
    await kiln('gzip');
    await row('tar | pigz', 'gzip', timedShell(`tar --numeric-owner -cf - -C '${fs}' . | pigz > '${out}/t.tar.gz'`), join(out, 't.tar.gz'));
    await row('tar | gzip', 'gzip', timedShell(`tar --numeric-owner -cf - -C '${fs}' . | gzip > '${out}/g.tar.gz'`), join(out, 'g.tar.gz'));
    return { layerMb: totalMb, files, rows };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const mb = process.argv[2] ? Number(process.argv[2]) : undefined;
  const r = await benchExport({ megabytes: mb });
  process.stdout.write(`layer: ${r.layerMb} MB in ${r.files} files\n`);
  for (const x of r.rows) {
    process.stdout.write(`${x.tool.padEnd(20)} ${x.compression.padEnd(5)} ${x.seconds.toFixed(2).padStart(7)} s  ${x.mbPerSecond.toFixed(1).padStart(7)} MB/s  out ${x.outputMb.toFixed(1)} MB\n`);
  }
}
