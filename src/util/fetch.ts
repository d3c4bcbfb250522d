// Every HTTP request kiln makes (registries, token servers, ADD URLs) goes through httpFetch.
//
// Node loads the certificates named by NODE_EXTRA_CA_CERTS before any JavaScript runs: with a
// system bundle that is ~70 ms, most of a cached build's start-up on this machine kind. bin/kiln
// therefore hands the variable over as KILN_EXTRA_CA_CERTS, and the certificates join fetch's
// trust store here, the first time a request is made; a build that opens no connection never
// pays for them.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { errorMessage } from './errors.js';

const HANDED_OVER = 'KILN_EXTRA_CA_CERTS';
const NODE_VARIABLE = 'NODE_EXTRA_CA_CERTS';
/** The key under which every copy of undici, Node's own included, finds the dispatcher fetch uses. */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

let deferredFile: string | undefined;
let trustReady: Promise<void> | undefined;

/**
 * Takes over the certificates bin/kiln deferred, and puts NODE_EXTRA_CA_CERTS back in the
 * environment so that programs kiln starts see the variable as the user set it.
 */
export function adoptDeferredCaCerts(env: NodeJS.ProcessEnv = process.env): void {
  const file = env[HANDED_OVER];
  if (file === undefined) return;
  delete env[HANDED_OVER];
  if (file === '') return;
  env[NODE_VARIABLE] = file;
  deferredFile = file;
}

interface DispatcherConstructor {
  new (opts: { connect: { ca: string[] } }): object;
}

async function addDeferredCaCerts(): Promise<void> {
  const file = deferredFile;
  if (file === undefined) return;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    // The warning Node itself prints when it cannot read the file; requests go on with its roots.
    process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${errorMessage(err)}`);
    return;
  }
  const slot = globalThis as unknown as Record<symbol, object | undefined>;
  // Node's undici makes its default agent on the first fetch; a data: URL needs no connection.
  await (await fetch('data:,')).arrayBuffer();
  const agent = slot[GLOBAL_DISPATCHER];
  if (!agent) throw new Error('fetch has no global dispatcher to add NODE_EXTRA_CA_CERTS to');
  // Like NODE_EXTRA_CA_CERTS: Node's bundled roots and the file's certificates. node:tls loads
  // here, not at start-up (~9 ms), and through require: the bundle's vm.Script has no import().
  const { rootCertificates } = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
  const Agent = agent.constructor as DispatcherConstructor;
  slot[GLOBAL_DISPATCHER] = new Agent({ connect: { ca: [...rootCertificates, pem] } });
}

export async function httpFetch(url: string | URL, init?: RequestInit): Promise<Response> {
  await (trustReady ??= addDeferredCaCerts());
  return fetch(url, init);
}
