// Named build contexts (`--build-context NAME=VALUE`): what a Dockerfile's FROM, COPY --from
// and RUN --mount=from= reach when a name matches one.

import { normalizeReference } from '../registry/reference.js';

/** A host folder: its files, filtered by its own .dockerignore. */
export interface FolderContext {
  name: string;
  kind: 'dir';
  ignorePatterns: string[];
}

export type NamedContext =
  | FolderContext
  /** An image in place of the one (or the stage) the Dockerfile names; `scratch` for none. */
  | { name: string; kind: 'image'; ref: string };

/**
 * The key a name is matched by: `alpine`, `alpine:latest` and `docker.io/library/alpine` are one
 * name, as in BuildKit. Undefined for what cannot name an image (it matches no context).
 */
export function namedContextKey(name: string): string | undefined {
  try {
    return normalizeReference(name);
  } catch {
    return undefined;
  }
}

/** The graph's name for a context source: `context` is the main one. */
export const contextSourceName = (named?: string) => (named === undefined ? 'context' : `context:${named}`);
