// loadKoffi takes koffi's prebuilt addon straight from its file; koffi's own entry (which
// probes for it, ~6 ms) is only the fallback, and koffi is found in kiln's own node_modules
// without Node's module resolution (~2.5 ms).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { runProgram } from '../helpers/kiln.js';
import { repoRoot } from '../helpers/paths.js';

test('loadKoffi loads the addon koffi itself would load, without going through its entry', async () => {
  // A fresh process, so that nothing has loaded koffi's entry yet.
  const script = `import Module, { createRequire } from 'node:module';
let resolved = 0;
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) { if (request === 'koffi') resolved++; return resolve.call(this, request, ...rest); };
import { loadKoffi } from ${JSON.stringify(join(repoRoot, 'dist/src/util/koffi.js'))};
const koffi = loadKoffi();
const libc = koffi.load('libc.so.6');
const entryLoaded = Object.keys(createRequire(import.meta.url).cache).some((p) => /[\\\\/]koffi[\\\\/]index\\.c?js$/.test(p));
console.log(JSON.stringify({ version: koffi.version, getpid: libc.func('int getpid(void)')(), pid: process.pid, entryLoaded, resolved }));`;
  const r = await runProgram(process.execPath, ['--input-type=module', '-e', script]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { version: string; getpid: number; pid: number; entryLoaded: boolean; resolved: number };
  const expected = (createRequire(import.meta.url)('koffi') as { version: string }).version;
  assert.equal(out.version, expected);
  assert.equal(out.getpid, out.pid);
  assert.equal(out.entryLoaded, false);
  assert.equal(out.resolved, 0, "koffi resolved through Node's module loader");
});
