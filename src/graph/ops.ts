// The build graph: plain data that the frontend produces and the solver consumes.
// Nothing here knows Dockerfile syntax, the store, or the sandbox.

import type { ImageConfig, Platform } from '../image/types.js';

export type Digest = `sha256:${string}`;

/** Where a step came from, for errors, progress and --explain. Lines are 1-based. */
export interface SourceLocation {
  file: string;
  line: number;
  endLine: number;
  column: number;
}

/**
 * A reference to another node's output, by position in the node's `inputs` list.
 * Ops name inputs by index (never by node id) so that an op's JSON, and so its cache key,
 * does not depend on how the graph happened to number its nodes.
 */
export type InputIndex = number;

// ---------------------------------------------------------------- sources

/** A base image, already resolved to a manifest digest by the frontend's image resolver. */
export interface ImageSourceOp {
  kind: 'source.image';
  /** Normalized reference as written after expansion, e.g. `docker.io/library/busybox:latest`. */
  ref: string;
  /** Digest of the platform-specific image manifest. */
  digest: Digest;
  platform: Platform;
}

export interface ScratchSourceOp {
  kind: 'source.scratch';
}

/**
 * The build context (or a named context). It has no snapshot: file ops and bind mounts read
 * it from the host folder the CLI was given, filtered by the ignore patterns.
 */
export interface ContextSourceOp {
  kind: 'source.context';
  /** `context` for the main context. */
  name: string;
  /** .dockerignore patterns in file order (BuildKit's semantics, `!` re-includes). */
  excludePatterns: string[];
}

// ---------------------------------------------------------------- exec (RUN)

export type NetworkMode = 'default' | 'none' | 'host';
export type SecurityMode = 'sandbox' | 'insecure';

export interface BindMount {
  type: 'bind';
  target: string;
  /** Input to mount from: the context or another stage/image. */
  from: InputIndex;
  source: string;
  readwrite: boolean;
}

export interface CacheMount {
  type: 'cache';
  target: string;
  id: string;
  sharing: 'shared' | 'private' | 'locked';
  /**
   * Seed the cache folder from this input's `source` path the first time; the folder then takes
   * that path's owner and mode, not `mode`, `uid` and `gid`, which are for a folder that starts empty.
   */
  from?: InputIndex;
  source: string;
  readonly: boolean;
  mode: number;
  uid: number;
  gid: number;
}

export interface TmpfsMount {
  type: 'tmpfs';
  target: string;
  /** Bytes; undefined means the kernel default. */
  size?: number;
}

export interface SecretMount {
  type: 'secret';
  id: string;
  /** Absent when only `env` is set. Default `/run/secrets/<id>` is filled in by the frontend. */
  target?: string;
  env?: string;
  required: boolean;
  mode: number;
  uid: number;
  gid: number;
}

export interface SshMount {
  type: 'ssh';
  id: string;
  target: string;
  required: boolean;
  mode: number;
  uid: number;
  gid: number;
}

export type RunMount = BindMount | CacheMount | TmpfsMount | SecretMount | SshMount;

/** A file the sandbox sees for the duration of the step only (a heredoc script). */
export interface EphemeralFile {
  path: string;
  content: string;
  mode: number;
}

export interface ExecOp {
  kind: 'exec';
  /** Input 0 is the root filesystem. */
  args: string[];
  /** `KEY=VALUE`, in the order the step sees them (the stage's ENV and ARG values, then proxies). */
  env: string[];
  cwd: string;
  /** As written in USER: a name or number, optionally `:group`. Resolved by the worker. */
  user: string;
  network: NetworkMode;
  security: SecurityMode;
  mounts: RunMount[];
  files: EphemeralFile[];
  /** Names of env entries that came from proxy build args: used, never recorded in history. */
  proxyEnv?: string[];
  /** --add-host entries, added to the step's /etc/hosts (absent when there are none). */
  extraHosts?: ExtraHost[];
  /** The step's host name, from the BUILDKIT_SANDBOX_HOSTNAME build arg (absent: DEFAULT_HOSTNAME). */
  hostname?: string;
}

/** BuildKit's host name for RUN steps: build scripts that look for it (to know they run in a build) find it. */
export const DEFAULT_HOSTNAME = 'buildkitsandbox';

export interface ExtraHost {
  host: string;
  ip: string;
}

// ---------------------------------------------------------------- file (COPY/ADD/WORKDIR)

export interface Chown {
  /** A name or a number, resolved against the destination's /etc/passwd. */
  user: string;
  group?: string;
}

export interface CopyAction {
  action: 'copy';
  /** The input to copy from: the context, a stage, or an image. */
  from: InputIndex;
  /** Source paths or wildcard patterns, relative to the source root. */
  src: string[];
  /** Absolute destination (WORKDIR already applied); a trailing `/` means "into this folder". */
  dest: string;
  chown?: Chown;
  /** Octal (`0755`) or symbolic (`u+x,g-w`), as given. */
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
  /** ADD semantics: local archives are extracted (unless `unpack` is false). */
  add: boolean;
  unpack?: boolean;
  keepGitDir?: boolean;
}

export interface MkdirAction {
  action: 'mkdir';
  path: string;
  mode: number;
  chown?: Chown;
}

export interface MkfileAction {
  action: 'mkfile';
  path: string;
  content: string;
  mode: number;
  chown?: Chown;
  chmod?: string;
}

export interface DownloadAction {
  action: 'download';
  url: string;
  dest: string;
  checksum?: Digest;
  chown?: Chown;
  chmod?: string;
  unpack?: boolean;
}

/** ADD of a git repository: the commit a ref names, checked out, its files copied to `dest`. */
export interface GitAction {
  action: 'git';
  /** As written (credentials included): what git fetches from. */
  remote: string;
  /** Branch, tag, ref name or full commit; absent means the remote's HEAD. */
  ref?: string;
  /** Folder of the repository whose contents are copied; absent means its root. */
  subdir?: string;
  dest: string;
  keepGitDir: boolean;
  /** ADD --checksum: the commit the ref must resolve to (in full, or its start). */
  checksum?: string;
  chown?: Chown;
  chmod?: string;
}

export type FileAction = CopyAction | MkdirAction | MkfileAction | DownloadAction | GitAction;

export interface FileOp {
  kind: 'file';
  /** Input 0 is the destination root filesystem (absent inputs[0] means an empty base, as --link). */
  actions: FileAction[];
}

export type Op = ImageSourceOp | ScratchSourceOp | ContextSourceOp | ExecOp | FileOp;

// ---------------------------------------------------------------- graph

export interface GraphNode {
  id: string;
  op: Op;
  /** Node ids, referenced from the op by position. */
  inputs: string[];
  /** Index of the stage this node belongs to; absent for shared sources (context, images). */
  stage?: number;
  /** For progress and errors: `[build 2/5] RUN make`. */
  name: string;
  location?: SourceLocation;
  /** The instruction as written (after the keyword), for history and --explain. */
  instruction?: string;
}

export interface HistoryStep {
  createdBy: string;
  comment?: string;
  /** The node whose diff is this step's layer; absent for config-only steps (empty_layer). */
  nodeId?: string;
}

export interface Stage {
  index: number;
  name?: string;
  platform: Platform;
  /** Node id of the stage's final filesystem state. */
  root: string;
  /** The image config after the last instruction (base image's config merged in). */
  config: ImageConfig;
  /** Steps of this stage only; the base image's history comes from the base. */
  history: HistoryStep[];
  /** Node id of the base (an image source, scratch, or another stage's root). */
  base: string;
  /**
   * The stage this one is built FROM, if any. Its root may be its own base image's node (a stage
   * of config instructions only), so `base` alone cannot tell; the history comes from this stage.
   */
  baseStage?: number;
  /** MAINTAINER (or the base image's author): the image config's `author`. */
  author?: string;
}

export interface Diagnostic {
  level: 'warning' | 'error';
  message: string;
  location?: SourceLocation;
  rule?: string;
}

export interface BuildGraph {
  nodes: Record<string, GraphNode>;
  /** The stages the target needs, in Dockerfile order (the target last). Others are not converted. */
  stages: Stage[];
  /** Dockerfile index of the target stage. */
  target: number;
  warnings: Diagnostic[];
}
