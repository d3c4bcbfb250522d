import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runProgram } from '../helpers/kiln.js';
import { repoRoot } from '../helpers/paths.js';

const bundle = join(repoRoot, 'dist', 'kiln.mjs');

test('the CLI bundle imports nothing but Node built-ins and koffi', async () => {
  const text = await readFile(bundle, 'utf8');
  const specifiers = [...text.matchAll(/(?:^|\n)\s*import\s[^;'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1] ?? m[2]);
  assert.ok(specifiers.length > 0);
  for (const s of specifiers) assert.ok(s!.startsWith('node:') || s === 'koffi', `bundle imports ${s}`);
  // koffi is loaded on first use, not at start-up.
  assert.doesNotMatch(text, /^import [^\n]*from ['"]koffi['"]/m);
});

test('the bundle finds kiln\'s own files from any working folder', async () => {
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const r = await runProgram(process.execPath, [bundle, 'version'], { cwd: tmpdir() });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `kiln ${pkg.version}\n`);
  const help = await runProgram(process.execPath, [bundle, 'build', '--help'], { cwd: tmpdir() });
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /kiln build/);
});
