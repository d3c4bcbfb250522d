// Benchmark: parse and convert a generated 2,000-line Dockerfile (target: median under 50 ms).
// Runnable alone (`node dist/bench/parse.js`) or through the `npm run bench` driver.

import { fileURLToPath } from 'node:url';
import { dockerfileToGraph } from '../src/frontend/index.js';
import { sha256 } from '../src/util/digest.js';

/** A realistic mix of instructions over four stages, exactly `lines` physical lines long. */
export function generateDockerfile(lines = 2000): string {
  const out: string[] = ['# syntax=docker/dockerfile:1', 'ARG BASE=debian:12', 'ARG VERSION=1.0'];
  const stageLines = Math.floor((lines - out.length) / 4);
  for (let s = 0; s < 4; s++) {
    const start = out.length;
    out.push(s === 0 ? 'FROM ${BASE} AS s0' : `FROM s${s - 1} AS s${s}`);
    out.push('ARG VERSION', 'WORKDIR /work');
    let i = 0;
    while (out.length - start < stageLines - 3) {
      switch (i % 8) {
        case 0: out.push(`RUN --mount=type=cache,target=/var/cache/c${i} echo "step ${i} $VERSION" && \\`, `    make -j4 target${i}`); break;
        case 1: out.push(`ENV K${i}=v${i} P${i}="with space \${VERSION}"`); break;
        case 2: out.push(`COPY --chown=1000:1000 src/${i}/ /work/${i}/`); break;
        case 3: out.push(`LABEL l${i}="label ${i}"`); break;
        case 4: out.push('RUN <<EOF', `echo heredoc ${i}`, 'EOF'); break;
        case 5: out.push(`# comment ${i}`); break;
        case 6: out.push(`EXPOSE ${1000 + i}/tcp`); break;
        default: out.push(`RUN ["sh", "-c", "echo exec ${i}"]`);
      }
      i++;
    }
    out.push('USER 1000', 'CMD ["/work/app"]');
  }
  while (out.length < lines) out.push(`LABEL pad${out.length}=x`);
  return out.slice(0, lines).join('\n') + '\n';
}

export async function benchParse(runs = 30): Promise<{ name: string; medianMs: number; cpuMedianMs: number }> {
  const dockerfile = generateDockerfile();
  const input = {
    dockerfile, dockerfileName: 'Dockerfile', buildArgs: new Map<string, string>(), platform: { os: 'linux', architecture: 'amd64' },
    ignorePatterns: [],
    resolveImage: async (ref: string) => ({
      ref, digest: sha256(ref), config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' as const, diff_ids: [] }, config: { Env: ['PATH=/bin'] } },
    }),
  };
  for (let i = 0; i < 3; i++) await dockerfileToGraph(input); // warm-up (JIT)
  const times: number[] = [];
  // CPU time too: on a busy machine wall time mostly measures the scheduler.
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await dockerfileToGraph(input);
    const c = process.cpuUsage(c0);
    times.push(performance.now() - t0);
    cpu.push((c.user + c.system) / 1000);
  }
  const median = (l: number[]) => [...l].sort((a, b) => a - b)[Math.floor(l.length / 2)]!;
  return { name: 'parse+convert 2000-line Dockerfile', medianMs: median(times), cpuMedianMs: median(cpu) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await benchParse();
  process.stdout.write(`${r.name}: median ${r.medianMs.toFixed(2)} ms wall, ${r.cpuMedianMs.toFixed(2)} ms CPU (target < 50 ms)\n`);
}
