// Bundles the compiled CLI (dist/src/cli/main.js) into one file, dist/kiln.mjs, which bin/kiln
// runs. Loading ~100 ES modules costs this machine kind ~50 ms per invocation (resolution,
// one read per file); one file removes most of that, and a cached build is mostly start-up.
// koffi stays outside: it is a native addon, loaded on first use.
import { build } from 'esbuild';

await build({
  entryPoints: [new URL('../dist/src/cli/main.js', import.meta.url).pathname],
  outfile: new URL('../dist/kiln.mjs', import.meta.url).pathname,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['koffi'],
  // CommonJS dependencies (ssri, tar-stream) call require(); an ES module has none.
  banner: { js: "import { createRequire as kilnCreateRequire } from 'node:module'; const require = kilnCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
