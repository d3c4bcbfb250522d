// Flags shared by the commands that talk to registries (pull, push, login, logout).

import type { FlagSpec, ParsedArgs } from './args.js';
import { flagList } from './args.js';
import type { RegistryEvent } from '../registry/pull.js';

export const REGISTRY_FLAGS: FlagSpec[] = [{ name: 'insecure-registry', kind: 'list' }];

export function insecureRegistries(a: ParsedArgs): string[] {
  return flagList(a, 'insecure-registry');
}

/** One line per blob on stderr, as docker pull/push print them. */
export function printRegistryEvent(e: RegistryEvent): void {
  const short = e.digest.slice('sha256:'.length, 'sha256:'.length + 12);
  switch (e.type) {
    case 'blob-done':
      process.stderr.write(`${short}: ${e.size} bytes done\n`);
      break;
    case 'blob-skip':
      process.stderr.write(`${short}: ${e.reason === 'present' ? 'already in the store' : e.reason === 'mounted' ? 'mounted from another repository' : 'already in the registry'}\n`);
      break;
    default:
      break;
  }
}
