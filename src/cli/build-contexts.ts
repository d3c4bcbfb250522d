// `--build-context NAME=VALUE`, as docker buildx: a folder, `docker-image://REF`,
// `oci-layout://PATH[:TAG][@DIGEST]`, or a git repository or URL (fetched as a main context
// would be).

import { resolve } from 'node:path';
import { KilnError } from '../util/errors.js';
import { isDir } from '../util/fs.js';
import { parseReference } from '../registry/reference.js';
import { namedContextKey } from '../frontend/named-contexts.js';
import { remoteContextOf, type RemoteContext } from './remote-context.js';
import { LAYOUT_SCHEME, parseLayoutContext, type LayoutImage } from '../image/oci-layout.js';

export type BuildContextSpec =
  /** `fetched`: a remote context's checkout, read whole (no .dockerignore), as BuildKit reads one. */
  | { name: string; key: string; kind: 'dir'; dir: string; fetched?: boolean }
  | { name: string; key: string; kind: 'image'; ref: string }
  /** An image in an OCI layout folder, its tag resolved to a digest when the flag is read. */
  | { name: string; key: string; kind: 'layout'; layout: LayoutImage }
  /** A git repository or URL, fetched into a folder before the build. */
  | { name: string; key: string; kind: 'remote'; remote: RemoteContext };

export function parseBuildContexts(values: string[]): BuildContextSpec[] {
  const byKey = new Map<string, BuildContextSpec>();
  for (const v of values) {
    const eq = v.indexOf('=');
    const name = eq < 0 ? '' : v.slice(0, eq);
    const value = eq < 0 ? '' : v.slice(eq + 1);
    if (!name || !value) throw new KilnError(`--build-context: expected NAME=PATH, NAME=docker-image://REF, NAME=oci-layout://PATH or NAME=URL, got "${v}"`, { exitCode: 2 });
    const key = namedContextKey(name);
    if (key === undefined) throw new KilnError(`--build-context: "${name}" cannot be a context name (it must be a stage or image name)`, { exitCode: 2 });
    if (byKey.has(key)) throw new KilnError(`--build-context: "${name}" is given twice`, { exitCode: 2 });
    byKey.set(key, parseValue(name, key, value));
  }
  return [...byKey.values()];
}

function parseValue(name: string, key: string, value: string): BuildContextSpec {
  const image = /^docker-image:\/\/(.*)$/.exec(value);
  if (image) {
    const ref = image[1]!;
    if (ref !== 'scratch') parseReference(ref, `--build-context ${name}`);
    return { name, key, kind: 'image', ref };
  }
  if (value.startsWith(LAYOUT_SCHEME)) return { name, key, kind: 'layout', layout: parseLayoutContext(value, `--build-context ${name}`) };
  const remote = isDir(value) ? undefined : remoteContextOf(value);
  if (remote) return { name, key, kind: 'remote', remote };
  // Kinds buildx knows that kiln does not fetch: say so rather than look for a folder of that name.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || value.startsWith('target:')) {
    const kind = /^[^:]+/.exec(value)![0];
    throw new KilnError(`--build-context ${name}: ${kind} contexts are not supported by kiln (a folder, docker-image://REF, oci-layout://PATH, or a git or http URL)`, { exitCode: 2 });
  }
  return { name, key, kind: 'dir', dir: resolve(value) };
}
