// Node built-ins that many commands never use, loaded on first use rather than at start-up: a
// fully cached build is mostly start-up, and these cost several milliseconds of it (child_process
// brings net and dgram with it) without ever being called there.

import { createRequire } from 'node:module';
import type * as ChildProcessModule from 'node:child_process';
import type * as NetModule from 'node:net';
import type * as ZlibModule from 'node:zlib';

const load = createRequire(import.meta.url);

let childProcessModule: typeof ChildProcessModule | undefined;
let netModule: typeof NetModule | undefined;
let zlibModule: typeof ZlibModule | undefined;

export function childProcess(): typeof ChildProcessModule {
  return (childProcessModule ??= load('node:child_process') as typeof ChildProcessModule);
}

export function net(): typeof NetModule {
  return (netModule ??= load('node:net') as typeof NetModule);
}

export function zlib(): typeof ZlibModule {
  return (zlibModule ??= load('node:zlib') as typeof ZlibModule);
}
