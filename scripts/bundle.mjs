// Bundles the compiled CLI (dist/src/cli/main.js) into one CommonJS file, dist/kiln.cjs, and
// makes a V8 code cache for it (dist/kiln.cjs.cache), which bin/kiln loads it with. Loading
// ~100 ES modules cost ~108 ms per invocation on this machine kind (a resolution and a read
// per file) and compiling the bundle a further ~40 ms; a cached build is mostly start-up.
// koffi stays outside: it is a native addon, loaded on first use.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const outfile = join(repo, 'dist', 'kiln.cjs');
const cacheFile = `${outfile}.cache`;

/** The global through which the bundle hands src/util/tar/pax.ts tar-stream's header codec. */
const TAR_HEADERS_KEY = 'kiln.tar-stream.headers';

// The codec is not in tar-stream's package exports, so pax.ts loads it by path at run time:
// inside the bundle that would be a second copy, read from node_modules, of a module the bundle
// already holds. The bundled codec announces itself instead, and pax.ts takes that one.
const exposeTarHeaders = {
  name: 'expose-tar-stream-headers',
  setup(b) {
    b.onLoad({ filter: /[\\/]tar-stream[\\/]headers\.js$/ }, (args) => ({
      contents: `${readFileSync(args.path, 'utf8')}\nglobalThis[Symbol.for(${JSON.stringify(TAR_HEADERS_KEY)})] = module.exports;\n`,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: [join(repo, 'dist', 'src', 'cli', 'main.js')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['koffi'],
  // The modules find files beside the code from their own URL; in the bundle that is its own.
  define: { 'import.meta.url': 'kilnBundleUrl' },
  banner: { js: "const kilnBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [exposeTarHeaders],
  logLevel: 'warning',
});

// esbuild escapes non-ASCII characters in strings but leaves them in regular expressions and
// the comments it keeps. One such character makes the whole source a two-byte string for V8:
// decoding the file then cost ~2.7 ms instead of ~0.3 and compiling ~0.6 ms more, on every run.
// A \u escape of each UTF-16 unit (a surrogate pair for characters beyond them) means the same
// character in a regular expression, a string or a comment.
const text = readFileSync(outfile, 'utf8');
const escape = (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
if (/[^\x00-\x7f]/.test(text)) writeFileSync(outfile, text.replace(/[^\x00-\x7f]/g, escape));

// The code cache holds what V8 compiled while running a real command: a cached build, the
// path that start-up dominates. A failure here only costs speed (bin/kiln compiles as usual).
rmSync(cacheFile, { force: true });
const work = mkdtempSync(join(tmpdir(), 'kiln-code-cache-'));
try {
  const ctx = join(work, 'ctx');
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nARG V=1\nCOPY hello /srv/\nENV A=$V\nLABEL x=y\nCMD ["/srv/hello"]\n');
  writeFileSync(join(ctx, 'hello'), 'hello\n');
  const kiln = (env) =>
    spawnSync(join(repo, 'bin', 'kiln'), ['build', '--root', join(work, 'store'), '--progress', 'plain', '-t', 'warm', ctx], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
  const cold = kiln({});
  const warm = cold.status === 0 ? kiln({ KILN_WRITE_CODE_CACHE: cacheFile }) : cold;
  if (warm.status !== 0) process.stderr.write(`bundle: no code cache (the warm-up build failed):\n${warm.stderr}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
