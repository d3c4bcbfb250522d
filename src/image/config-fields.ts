// The `config` object of an image as BuildKit writes it: the OCI fields and Docker's three
// extensions, in Go's field order, each left out when empty (Go's omitempty). A base image may
// carry a container's whole config (Hostname, AttachStdin, Image, ...); BuildKit reads it into
// its struct, so those fields never reach the image it builds, and neither do they here.

import type { ImageConfig } from './types.js';

const FIELDS = [
  'User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped',
  'Healthcheck', 'OnBuild', 'Shell',
] as const satisfies ReadonlyArray<keyof ImageConfig>;

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v).length === 0;
}

export function imageConfigAsWritten(config: ImageConfig | undefined): ImageConfig {
  const out: Record<string, unknown> = {};
  for (const k of FIELDS) {
    const v = config?.[k];
    // A healthcheck object is kept even when all its fields are zero: Go omits only a nil pointer.
    if (k === 'Healthcheck' ? v != null : !isEmpty(v)) out[k] = v;
  }
  return out as ImageConfig;
}
