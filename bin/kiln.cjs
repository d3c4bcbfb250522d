// What bin/kiln starts. Runs the one-file bundle (scripts/bundle.mjs) with its V8 code cache,
// which saves most of start-up. After a bare `tsc` (the compiled modules newer than the bundle)
// it runs those.
// CommonJS (bin/package.json), so that start-up needs no ES module loader.
'use strict';
const { readFileSync, statSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { join } = require('node:path');
const { Script } = require('node:vm');

const dist = join(__dirname, '..', 'dist');
const mtime = (p) => {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -1;
  }
};
const bundle = join(dist, 'kiln.cjs');
if (mtime(bundle) >= mtime(join(dist, 'src', 'cli', 'main.js'))) {
  let cachedData;
  try {
    cachedData = readFileSync(`${bundle}.cache`);
  } catch {
    // no cache: V8 compiles as usual
  }
  const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(bundle, 'utf8')}\n})`;
  const script = new Script(source, { filename: bundle, cachedData });
  const out = process.env.KILN_WRITE_CODE_CACHE;
  if (out) process.once('exit', () => writeFileSync(out, script.createCachedData()));
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, dist);
} else {
  import(join(dist, 'src', 'cli', 'main.js'));
}
