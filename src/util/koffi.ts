// koffi, loaded once for the whole process (libc calls, the native file batches, OpenSSL's
// resumable SHA-256). Its entry module finds the prebuilt addon by probing: resolving its
// platform package, then reading the ELF header of the node binary to tell glibc from musl.
// That took ~6.5 ms of a build's first step here, the addon itself ~1.3 ms. The glibc addon of
// this platform is tried first, straight from its file; anything unexpected (another layout,
// musl, another version) falls back to koffi's own entry. koffi is looked for first in kiln's
// own node_modules: resolving it through Node's module loader cost ~2.5 ms of its own.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type koffiModule from 'koffi';
import { packageRoot } from './package-root.js';

export type Koffi = typeof koffiModule;
export type NativeFunction = ReturnType<ReturnType<Koffi['load']>['func']>;

let koffi: Koffi | undefined;

export function loadKoffi(): Koffi {
  if (koffi) return koffi;
  return (koffi = prebuiltAddon() ?? (nodeRequire()('koffi') as Koffi));
}

const nodeRequire = () => createRequire(import.meta.url);

function prebuiltAddon(): Koffi | null {
  if (process.platform !== 'linux') return null;
  try {
    const { dir, version } = koffiPackage();
    const platform = `${process.platform}-${process.arch}`;
    const addon = join(dir, '..', '@koromix', `koffi-${platform}`, `${process.platform}_${process.arch}`, 'koffi.node');
    const module = { exports: {} as { version?: string } };
    process.dlopen(module, addon);
    return module.exports.version === version ? (module.exports as unknown as Koffi) : null;
  } catch {
    return null;
  }
}

/** koffi's folder and version: kiln's own node_modules/koffi, else wherever Node resolves it. */
function koffiPackage(): { dir: string; version?: string } {
  const read = (dir: string) => ({ dir, ...(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string }) });
  try {
    return read(join(packageRoot(), 'node_modules', 'koffi'));
  } catch {
    return read(dirname(nodeRequire().resolve('koffi')));
  }
}
