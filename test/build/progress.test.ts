// --progress plain|json|tty|auto|quiet through the CLI. tty and auto run kiln on a real
// terminal: util-linux `script` gives it a pty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { tempDir } from '../helpers/tmp.js';
import { runKiln, runProgram } from '../helpers/kiln.js';
import { kilnBin } from '../helpers/paths.js';
import { busyboxStore, writeTree, assertOk, BASE_REF, parseEvents } from './fixture.js';

// At the top level, not in before(): tempDir's cleanup would run when the hook ends.
const root = await busyboxStore();

const DOCKERFILE = `FROM ${BASE_REF}
COPY hello.txt /hello.txt
RUN for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done
ENV DONE=yes
`;

async function project(marker: string): Promise<string> {
  const ctx = await tempDir('kiln-progress-');
  await writeTree(ctx, { Dockerfile: DOCKERFILE, 'hello.txt': `hello ${marker}\n` });
  return ctx;
}

/** Runs kiln on a pseudo-terminal; returns what the terminal received. */
async function onTerminal(args: string[], rows = 40): Promise<{ code: number; out: string }> {
  const cmd = `stty rows ${rows} cols 120; ` + [kilnBin, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const r = await runProgram('script', ['-q', '-e', '-c', cmd, '/dev/null'], { env: { COLUMNS: '120', LINES: '40' } });
  return { code: r.code, out: r.stdout };
}

test('plain: BuildKit-style #N lines with DONE and CACHED', async () => {
  const ctx = await project('plain');
  const first = await runKiln(['build', '--root', root, '--progress', 'plain', ctx]);
  assertOk(first);
  const e = first.stderr;
  assert.match(e, /^#1 \[internal\] load docker\.io\/library\/busybox:test$/m);
  assert.match(e, /^#2 \[stage-0 2\/4\] COPY hello\.txt \/hello\.txt$/m);
  assert.match(e, /^#3 \[stage-0 3\/4\] RUN for i in 1 2 3 4 5 6; do echo tick \$i; sleep 0\.3; done$/m);
  assert.match(e, /^#3 \d+\.\d{3} tick 6$/m);
  assert.match(e, /^#3 DONE \d+\.\ds$/m);
  assert.match(e, /^#2 DONE \d+\.\ds$/m);
  assert.doesNotMatch(e, /\x1b\[/, 'no terminal control sequences in plain output');

  const again = await runKiln(['build', '--root', root, '--progress', 'plain', ctx]);
  assertOk(again);
  assert.match(again.stderr, /^#2 CACHED$/m);
  assert.match(again.stderr, /^#3 CACHED$/m);
  assert.doesNotMatch(again.stderr, /^#3 [\d.]+ tick/m, 'a cached step prints no output');
});

test('plain: a log line\'s time counts from its own step\'s start, as BuildKit prints it', async () => {
  const ctx = await tempDir('kiln-progress-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nRUN sleep 1.2; echo first\nRUN echo second\n` });
  const r = await runKiln(['build', '--root', root, '--progress', 'plain', ctx]);
  assertOk(r);
  const at = (seq: number, text: string) => Number(new RegExp(`^#${seq} (\\d+\\.\\d{3}) ${text}$`, 'm').exec(r.stderr)?.[1]);
  assert.ok(at(2, 'first') >= 1.2, r.stderr);
  // Since the build's start it would be 1.2 s at least: the step before slept that long.
  assert.ok(at(3, 'second') < 1, r.stderr);
});

test('plain: output that does not end in a newline still shows as the step\'s last line, before DONE', async () => {
  const ctx = await tempDir('kiln-progress-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nRUN printf 'a\\nb'\n` });
  const r = await runKiln(['build', '--root', root, '--progress', 'plain', ctx]);
  assertOk(r);
  assert.match(r.stderr, /^#2 \d+\.\d{3} a\n#2 \d+\.\d{3} b\n#2 DONE /m);
});

test('plain: a failed step\'s ERROR line is one line; the last words name the Dockerfile line and quote the output', async () => {
  const ctx = await tempDir('kiln-progress-');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\nRUN echo out; echo err >&2; exit 3\n` });
  const r = await runKiln(['build', '--root', root, '--progress', 'plain', ctx]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.split('\n');
  const at = lines.findIndex((l) => l.startsWith('#2 ERROR: '));
  assert.match(lines[at]!, /did not complete successfully: exit code: 3$/);
  assert.match(lines.slice(at + 1).join('\n'), /^error: Dockerfile:2:1: .*exit code: 3\nlast lines of its output:\n {2}out\n {2}err\n/);
});

test('json: one event per line, steps with id, seq, name, state and times, logs, and the result', async () => {
  const ctx = await project('json');
  const r = await runKiln(['build', '--root', root, '--progress', 'json', '-t', 'progress:json', ctx]);
  assertOk(r);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not JSON: ${l}`);
  const { events, steps } = parseEvents(r.stderr);
  const run = steps.filter((s) => s.name.includes('RUN for i'));
  assert.deepEqual(run.map((s) => s.state), ['waiting', 'running', 'done']);
  for (const s of run) {
    assert.equal(s.id, 's0.3');
    assert.equal(s.seq, 3);
    assert.equal(typeof s.at, 'number');
  }
  assert.equal(typeof run[2]!.durationMs, 'number');
  const logs = events.filter((e) => e.type === 'log' && e.seq === 3).map((e) => (e.type === 'log' ? e.data : '')).join('');
  assert.equal(logs, 'tick 1\ntick 2\ntick 3\ntick 4\ntick 5\ntick 6\n');
  const result = events.at(-1);
  assert.equal(result?.type, 'result');
  if (result?.type === 'result') {
    assert.match(result.manifestDigest, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(result.names, ['docker.io/library/progress:json']);
  }
});

test('quiet: only the image id on stdout, nothing on stderr', async () => {
  const ctx = await project('quiet');
  const r = await runKiln(['build', '--root', root, '-q', ctx]);
  assertOk(r);
  assert.match(r.stdout, /^sha256:[0-9a-f]{64}\n$/);
  assert.equal(r.stderr, '');
});

test('tty: a live view redrawn in place, with running rows and their last output lines', async () => {
  const ctx = await project('tty');
  const r = await onTerminal(['build', '--root', root, '--progress', 'tty', ctx]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /\x1b\[\d+F/, 'moves the cursor up to redraw');
  assert.match(r.out, /\x1b\[2K/, 'clears the rows it redraws');
  assert.match(r.out, /#3 running \[stage-0 3\/4\] RUN for i in/);
  assert.match(r.out, /> tick \d/);
  assert.match(r.out, /#3 done +\[stage-0 3\/4\] RUN for i in .* \d+\.\ds/);
  assert.match(r.out, /#2 done +\[stage-0 2\/4\] COPY hello\.txt/);

  await writeFile(join(ctx, 'hello.txt'), 'hello tty again\n');
  const cached = await onTerminal(['build', '--root', root, '--progress', 'tty', ctx]);
  assert.equal(cached.code, 0, cached.out);
  assert.match(cached.out, /#3 done/);
});

test('tty: on a short terminal, finished steps fold into one line; the last frame lists every step', async () => {
  const ctx = await tempDir('kiln-progress-');
  const steps = Array.from({ length: 12 }, (_, i) => `RUN sleep 0.2 && echo step ${i} > /s${i}`).join('\n');
  await writeTree(ctx, { Dockerfile: `FROM ${BASE_REF}\n${steps}\n` });
  const r = await onTerminal(['build', '--root', root, '--progress', 'tty', ctx], 8);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /\d+ finished steps? above/);
  const last = r.out.slice(r.out.lastIndexOf('finished step'));
  for (let n = 1; n <= 13; n++) assert.match(last, new RegExp(`#${n} done `), `#${n} in the last frame`);
});

test('auto: tty on a terminal, plain otherwise; a bad mode names the flag', async () => {
  const ctx = await project('auto');
  const term = await onTerminal(['build', '--root', root, ctx]);
  assert.equal(term.code, 0, term.out);
  assert.match(term.out, /\x1b\[\d+F|\x1b\[2K/);
  const piped = await runKiln(['build', '--root', root, ctx]);
  assertOk(piped);
  assert.match(piped.stderr, /^#3 CACHED$/m);
  assert.doesNotMatch(piped.stderr, /\x1b\[/);

  const bad = await runKiln(['build', '--root', root, '--progress', 'fancy', ctx]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--progress: expected auto, tty, plain, json or quiet, got "fancy"/);
});

test('BUILDKIT_PROGRESS picks the mode when --progress is not given, as with docker build', async () => {
  const ctx = await project('env');
  const json = await runKiln(['build', '--root', root, ctx], { env: { BUILDKIT_PROGRESS: 'json' } });
  assertOk(json);
  assert.ok(parseEvents(json.stderr).steps.length > 0, json.stderr);
  const flagWins = await runKiln(['build', '--root', root, '--progress', 'plain', ctx], { env: { BUILDKIT_PROGRESS: 'json' } });
  assertOk(flagWins);
  assert.match(flagWins.stderr, /^#\d+ /m);
  assert.doesNotMatch(flagWins.stderr, /^\{/m);
  const bad = await runKiln(['build', '--root', root, ctx], { env: { BUILDKIT_PROGRESS: 'rawjson' } });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /BUILDKIT_PROGRESS: expected auto, tty, plain, json or quiet, got "rawjson" \(kiln's event stream is json/);
});
