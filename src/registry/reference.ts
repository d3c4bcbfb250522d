// Image references, parsed and normalised the way docker does, so that `busybox`,
// `library/busybox` and `docker.io/library/busybox:latest` all name the same image and the
// same local tag.

import { KilnError } from '../util/errors.js';

export const DOCKER_HUB = 'docker.io';
/** Docker Hub's API lives on a different host than the name users write. */
export const DOCKER_HUB_API = 'registry-1.docker.io';

export interface ImageReference {
  /** Registry host, with port when one was written: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  registry: string;
  /** Repository path inside the registry: `library/busybox`. */
  repository: string;
  /** Explicit tag, or `latest` when neither tag nor digest was written. */
  tag?: string;
  /** `sha256:...` when pinned by digest (wins over the tag when both are given). */
  digest?: string;
}

// The grammar of distribution/reference, written out as regular expressions.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_LABEL = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
const NAME_TOTAL_MAX = 255;

/**
 * Parses `[registry/]repo[:tag][@digest]` into its normalised parts. `what` names the flag or
 * instruction in errors (e.g. `FROM`, `kiln pull`).
 */
export function parseReference(text: string, what = 'image reference'): ImageReference {
  const fail = (why: string): never => {
    throw new KilnError(`${what}: invalid reference "${text}": ${why}`, { exitCode: 2 });
  };
  if (text === '') fail('it is empty');
  if (/\s/.test(text)) fail('it contains whitespace');

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail(`"${digest}" is not a digest (expected sha256:<64 hex>)`);
    if (digest.startsWith('sha256:') && !SHA256_DIGEST.test(digest)) {
      fail(`"${digest}" is not a sha256 digest (expected 64 lowercase hex characters)`);
    }
  }

  // A tag is what follows the last ':' after the last '/' (a ':' before that is a port).
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`tag "${tag}" is not valid (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  if (rest === '') fail('the repository name is empty');

  let registry: string;
  let repository: string;
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  // Docker's rule: the first component is a host only if it looks like one.
  if (slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase())) {
    registry = first;
    repository = rest.slice(slash + 1);
    if (!DOMAIN.test(registry)) fail(`"${registry}" is not a valid registry host`);
  } else {
    registry = DOCKER_HUB;
    repository = rest;
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;

  for (const part of repository.split('/')) {
    if (part === '') fail('the repository path has an empty component');
    if (part !== part.toLowerCase() && PATH_COMPONENT.test(part.toLowerCase())) fail('repository name must be lowercase');
    if (!PATH_COMPONENT.test(part)) {
      fail(`"${part}" is not a valid repository component (lowercase letters, digits, separated by . _ __ or -)`);
    }
  }
  if (registry.length + 1 + repository.length > NAME_TOTAL_MAX) fail(`the name is longer than ${NAME_TOTAL_MAX} characters`);
  if (/^[0-9a-f]{64}$/.test(text)) {
    // docker refuses names that look like image ids, since `docker run <id>` means the id.
    fail('a 64-character hex name is an image id, not a repository');
  }

  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, tag, digest };
}

/** `registry/repository` */
export function repositoryName(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The full normalised form: `docker.io/library/busybox:latest`, `host:5000/x@sha256:...`, or both. */
export function formatReference(ref: ImageReference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The tag or digest to ask the registry for: the digest when there is one. */
export function referenceTarget(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** The short form docker shows: `busybox:latest`, `user/img:1`, `host:5000/img:tag`. */
export function familiarReference(ref: ImageReference): string {
  let name = repositoryName(ref);
  if (ref.registry === DOCKER_HUB) {
    name = ref.repository.startsWith('library/') ? ref.repository.slice('library/'.length) : ref.repository;
  }
  if (ref.tag !== undefined) name += `:${ref.tag}`;
  if (ref.digest !== undefined) name += `@${ref.digest}`;
  return name;
}

/** Normalises a reference string in one call: `busybox` -> `docker.io/library/busybox:latest`. */
export function normalizeReference(text: string, what?: string): string {
  return formatReference(parseReference(text, what));
}

/** The host to connect to: Docker Hub's name differs from its API host. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/**
 * Normalises a registry name as `kiln login`/config.json use it: `docker.io` and its aliases
 * become docker's `https://index.docker.io/v1/` key; other hosts lose scheme and path.
 */
export function normalizeRegistryHost(text: string): string {
  let host = text.trim().replace(/^[a-z]+:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  if (host === 'index.docker.io' || host === DOCKER_HUB_API) host = DOCKER_HUB;
  return host;
}

/** Whether plain HTTP is allowed without asking: loopback hosts only. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = hostOf(registry);
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** `host:port` / `[v6]:port` -> host (brackets removed). */
export function hostOf(registry: string): string {
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    return registry.slice(1, end);
  }
  const colon = registry.lastIndexOf(':');
  return colon >= 0 ? registry.slice(0, colon) : registry;
}
