import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Script } from 'node:vm';
import { isBuiltin } from 'node:module';
import { runProgram } from '../helpers/kiln.js';
import { repoRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';

const bundle = join(repoRoot, 'dist', 'kiln.cjs');

test('the CLI bundle requires nothing but Node built-ins and koffi', async () => {
  const text = await readFile(bundle, 'utf8');
  const specifiers = [...text.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!);
  assert.ok(specifiers.length > 0);
  for (const s of specifiers) assert.ok(s === 'koffi' || isBuiltin(s), `bundle requires ${s}`);
});

test('the code cache made at build time matches the bundle (V8 accepts it)', async () => {
  const source = `(function (exports, require, module, __filename, __dirname) {${await readFile(bundle, 'utf8')}\n})`;
  const script = new Script(source, { filename: bundle, cachedData: await readFile(`${bundle}.cache`) });
  assert.equal(script.cachedDataRejected, false);
});

test('the bundle finds kiln\'s own files from any working folder', async () => {
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const r = await runProgram(join(repoRoot, 'bin', 'kiln'), ['version'], { cwd: tmpdir() });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `kiln ${pkg.version}\n`);
  const help = await runProgram(join(repoRoot, 'bin', 'kiln'), ['build', '--help'], { cwd: tmpdir() });
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /kiln build/);
});

test('bin/kiln runs through a symbolic link, as npm installs it', async () => {
  const link = join(await tempDir('kiln-bin-'), 'kiln');
  await symlink(join(repoRoot, 'bin', 'kiln'), link);
  const r = await runProgram(link, ['version'], { cwd: tmpdir() });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^kiln \d+\.\d+\.\d+\n$/);
});

test('the bundle is ASCII (V8 keeps it one byte wide) and still means its non-ASCII characters: µs and μs durations', async () => {
  const text = await readFile(bundle, 'utf8');
  const at = text.search(/[^\x00-\x7f]/);
  assert.equal(at, -1, `non-ASCII at ${at}: ${text.slice(at - 40, at + 10)}`);
  const dir = await tempDir('kiln-bundle-');
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nHEALTHCHECK --interval=1500µs --timeout=2000μs CMD ["/x"]\n');
  const root = join(dir, 'store');
  const built = await runProgram(join(repoRoot, 'bin', 'kiln'), ['build', '--root', root, '--progress', 'quiet', '-t', 'hc:1', dir]);
  assert.equal(built.code, 0, built.stderr);
  const shown = await runProgram(join(repoRoot, 'bin', 'kiln'), ['inspect', '--root', root, 'hc:1']);
  const config = (JSON.parse(shown.stdout) as { config: { Healthcheck: { Interval: number; Timeout: number } } }).config;
  assert.equal(config.Healthcheck.Interval, 1_500_000);
  assert.equal(config.Healthcheck.Timeout, 2_000_000);
});
