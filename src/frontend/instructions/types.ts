// Instructions after parsing and validation, before variable expansion (values are raw text;
// the converter expands exactly the fields BuildKit expands).

import type { SourceLocation } from '../../graph/ops.js';
import type { Heredoc } from '../parser/node.js';

interface Base {
  location: SourceLocation;
  /** The logical line as written. */
  original: string;
}

export interface KeyValue {
  key: string;
  value: string;
}

export interface FromInstruction extends Base {
  kind: 'from';
  image: string;
  /** Stage name as written (lower-cased later, after expansion). */
  stageName?: string;
  /** The `AS` keyword as written, when there is a stage name. */
  asKeyword?: string;
  platform?: string;
}

/** A `--mount` value split into its options; checked here, defaults applied by the converter. */
export interface RawMount {
  type: 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';
  options: Map<string, string>;
  text: string;
}

export interface RunInstruction extends Base {
  kind: 'run';
  /** Exec form: argv; shell form: the one command line. */
  cmdLine: string[];
  prependShell: boolean;
  heredocs: Heredoc[];
  mounts: RawMount[];
  network?: string;
  security?: string;
}

export interface CmdInstruction extends Base {
  kind: 'cmd' | 'entrypoint';
  cmdLine: string[];
  prependShell: boolean;
}

export interface ShellInstruction extends Base {
  kind: 'shell';
  shell: string[];
}

export interface KeyValueInstruction extends Base {
  kind: 'env' | 'label';
  pairs: KeyValue[];
  /** Written as `ENV key value` (no `=`): still accepted, linted. */
  legacy: boolean;
}

export interface ExposeInstruction extends Base {
  kind: 'expose';
  ports: string[];
}

export interface CopyInstruction extends Base {
  kind: 'copy' | 'add';
  srcs: string[];
  dest: string;
  heredocs: Heredoc[];
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
  checksum?: string;
  keepGitDir?: boolean;
  unpack?: boolean;
}

export interface ValueInstruction extends Base {
  kind: 'user' | 'workdir' | 'stopsignal' | 'maintainer';
  value: string;
}

export interface VolumeInstruction extends Base {
  kind: 'volume';
  volumes: string[];
}

export interface ArgInstruction extends Base {
  kind: 'arg';
  args: { key: string; value?: string }[];
}

export interface OnbuildInstruction extends Base {
  kind: 'onbuild';
  /** The trigger as stored in the image config (`RUN echo hi`). */
  expression: string;
}

export interface HealthcheckInstruction extends Base {
  kind: 'healthcheck';
  /** `["NONE"]`, `["CMD", ...argv]` or `["CMD-SHELL", line]`. */
  test: string[];
  /** Nanoseconds; undefined = inherit. */
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
}

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CmdInstruction
  | ShellInstruction
  | KeyValueInstruction
  | ExposeInstruction
  | CopyInstruction
  | ValueInstruction
  | VolumeInstruction
  | ArgInstruction
  | OnbuildInstruction
  | HealthcheckInstruction;
