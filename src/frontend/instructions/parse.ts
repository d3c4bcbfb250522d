// Parser nodes -> checked instructions. Every error names FILE:LINE:COLUMN and what is wrong.

import { KilnError } from '../../util/errors.js';
import type { SourceLocation } from '../../graph/ops.js';
import type { Node } from '../parser/node.js';
import type { ParsedDockerfile } from '../parse.js';
import { Flags, FlagError, type FlagKind } from './flags.js';
import { parseMount, MountError } from './mounts.js';
import { parseHeredocWord } from '../parser/heredoc.js';
import {
  checkChmod, checkStageName, isLiteral, networkModes, parseExposePort, parseGoDuration, securityModes,
} from './values.js';
import type {
  ArgInstruction, CopyInstruction, FromInstruction, HealthcheckInstruction, Instruction, KeyValue,
} from './types.js';

export interface StageSpec {
  index: number;
  from: FromInstruction;
  commands: Instruction[];
}

export interface DockerfileInstructions {
  /** ARGs before the first FROM. */
  metaArgs: ArgInstruction[];
  stages: StageSpec[];
}

const flagSpecs: Record<string, Record<string, FlagKind>> = {
  from: { platform: 'string' },
  run: { mount: 'list', network: 'string', security: 'string' },
  copy: { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'list' },
  add: { chown: 'string', chmod: 'string', link: 'bool', exclude: 'list', checksum: 'string', 'keep-git-dir': 'bool', unpack: 'bool' },
  healthcheck: { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
};
const known = new Set([
  'from', 'run', 'cmd', 'entrypoint', 'shell', 'env', 'label', 'expose', 'copy', 'add', 'volume', 'user', 'workdir',
  'stopsignal', 'maintainer', 'arg', 'onbuild', 'healthcheck',
]);

class InstructionError extends Error {
  constructor(message: string, readonly flag?: string) {
    super(message);
  }
}
const fail = (msg: string): never => {
  throw new InstructionError(msg);
};

/** 1-based column of `needle` on the instruction's first line, else of its first non-blank. */
function columnOf(lines: readonly string[], line: number, needle?: string): number {
  const text = lines[line - 1] ?? '';
  if (needle) {
    const i = text.indexOf(needle);
    if (i >= 0) return i + 1;
  }
  const m = /\S/.exec(text);
  return m ? m.index + 1 : 1;
}

export function parseInstructions(df: ParsedDockerfile, text: string): DockerfileInstructions {
  const lines = text.replace(/^\ufeff/, '').split('\n');
  const metaArgs: ArgInstruction[] = [];
  const stages: StageSpec[] = [];
  for (const node of df.nodes) {
    const location: SourceLocation = { file: df.fileName, line: node.startLine, endLine: node.endLine, column: columnOf(lines, node.startLine) };
    let ins: Instruction;
    try {
      ins = parseInstruction(node, location, df.escapeToken);
    } catch (e) {
      if (e instanceof InstructionError || e instanceof FlagError) {
        const flag = e.flag;
        throw new KilnError(e.message, {
          location: { file: df.fileName, line: node.startLine, column: flag ? columnOf(lines, node.startLine, flag.split('=')[0]) : location.column },
        });
      }
      throw e;
    }
    if (ins.kind === 'from') {
      stages.push({ index: stages.length, from: ins, commands: [] });
    } else if (stages.length === 0) {
      if (ins.kind !== 'arg') {
        throw new KilnError(`${node.keyword.toUpperCase()} before the first FROM: no build stage in current context (only ARG may come before FROM)`, {
          location: { file: df.fileName, line: node.startLine, column: location.column },
        });
      }
      metaArgs.push(ins);
    } else {
      stages.at(-1)!.commands.push(ins);
    }
  }
  if (stages.length === 0) {
    throw new KilnError('the Dockerfile has no FROM instruction', { location: { file: df.fileName, line: df.endLine, column: 1 } });
  }
  return { metaArgs, stages };
}

export function parseInstruction(node: Node, location: SourceLocation, escapeToken: string): Instruction {
  const kw = node.keyword.toLowerCase();
  const KW = node.keyword.toUpperCase();
  if (!known.has(kw)) fail(`unknown instruction: ${KW}`);
  const flags = new Flags(node.flags, flagSpecs[kw] ?? {}, KW);
  const args = node.args;
  const atLeast = (n: number, what = n === 1 ? 'one argument' : `${n} arguments`) => {
    if (args.length < n) fail(`${KW} requires at least ${what}`);
  };
  const exactlyOne = () => {
    if (args.length !== 1) fail(`${KW} requires exactly one argument`);
  };
  switch (kw) {
    case 'from': {
      if (args.length !== 1 && args.length !== 3) fail('FROM requires either one or three arguments (FROM image [AS name])');
      if (args.length === 3 && args[1]!.toLowerCase() !== 'as') fail(`FROM: expected "AS" before the stage name, got "${args[1]}"`);
      const stageName = args[2];
      if (stageName !== undefined) {
        const bad = checkStageName(stageName);
        if (bad) fail(bad);
      }
      return {
        location, original: node.original, kind: 'from', image: args[0]!, stageName, asKeyword: args[1], platform: flags.string('platform'),
      };
    }
    case 'run': {
      if (args.length === 0 && node.heredocs.length === 0) fail('RUN requires at least one argument');
      const network = flags.string('network');
      if (network !== undefined && isLiteral(network) && !(networkModes as readonly string[]).includes(network)) {
        throw new InstructionError(`unsupported network mode "${network}" (default, none or host)`, '--network');
      }
      const security = flags.string('security');
      if (security !== undefined && isLiteral(security) && !(securityModes as readonly string[]).includes(security)) {
        throw new InstructionError(`unsupported security mode "${security}" (sandbox or insecure)`, '--security');
      }
      const mounts = flags.list('mount').map((m) => {
        try {
          return parseMount(m);
        } catch (e) {
          if (e instanceof MountError) throw new InstructionError(e.message, '--mount');
          throw e;
        }
      });
      return { location, original: node.original, kind: 'run', cmdLine: args, prependShell: !node.json, heredocs: node.heredocs, mounts, network, security };
    }
    case 'cmd':
    case 'entrypoint':
      return { location, original: node.original, kind: kw, cmdLine: args, prependShell: !node.json };
    case 'shell':
      if (!node.json) fail('SHELL requires the arguments to be in JSON form (SHELL ["executable", "parameters"])');
      atLeast(1);
      return { location, original: node.original, kind: 'shell', shell: args };
    case 'env':
    case 'label': {
      atLeast(1);
      const pairs: KeyValue[] = [];
      for (let i = 0; i < args.length; i += 3) {
        const key = args[i]!;
        if (key === '') fail(`${KW} names can not be blank`);
        pairs.push({ key, value: args[i + 1] ?? '' });
      }
      return { location, original: node.original, kind: kw, pairs, legacy: args[2] === '' };
    }
    case 'expose':
      atLeast(1);
      for (const p of args) {
        if (!isLiteral(p)) continue;
        try {
          parseExposePort(p);
        } catch (e) {
          fail(`EXPOSE: ${(e as Error).message}`);
        }
      }
      return { location, original: node.original, kind: 'expose', ports: args };
    case 'copy':
    case 'add':
      return parseCopy(kw, node, flags, { location, original: node.original });
    case 'volume':
      atLeast(1);
      for (const v of args) if (v.trim() === '') fail('VOLUME specified can not be an empty string');
      return { location, original: node.original, kind: 'volume', volumes: args };
    case 'user':
    case 'workdir':
    case 'stopsignal':
    case 'maintainer':
      exactlyOne();
      if (kw === 'stopsignal' && isLiteral(args[0]!)) checkSignal(args[0]!);
      return { location, original: node.original, kind: kw, value: args[0]! };
    case 'arg': {
      atLeast(1);
      return {
        location,
        original: node.original,
        kind: 'arg',
        args: args.map((w) => {
          const eq = w.indexOf('=');
          const key = eq < 0 ? w : w.slice(0, eq);
          if (key === '') fail('ARG names can not be blank');
          return eq < 0 ? { key } : { key, value: w.slice(eq + 1) };
        }),
      };
    }
    case 'onbuild': {
      const sub = node.sub;
      if (!sub) fail('ONBUILD requires at least one argument');
      const subKw = sub!.keyword.toUpperCase();
      if (subKw === 'ONBUILD') fail('chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
      if (subKw === 'FROM' || subKw === 'MAINTAINER') fail(`${subKw} isn't allowed as an ONBUILD trigger`);
      parseInstruction(sub!, location, escapeToken);
      return { location, original: node.original, kind: 'onbuild', expression: node.original.replace(/^\s*onbuild\s*/i, '') };
    }
    case 'healthcheck':
      return parseHealthcheck(node, flags, { location, original: node.original });
  }
  return fail(`unknown instruction: ${KW}`);
}

const signalNames = new Set([
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR',
  'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH', 'XCPU', 'XFSZ',
]);
function checkSignal(v: string): void {
  const name = v.toUpperCase().replace(/^SIG/, '');
  // As moby's signal.ParseSignal: any number but 0 (the runtime is the judge of it).
  if (/^-?\d+$/.test(v) && Number(v) !== 0) return;
  if (signalNames.has(name)) return;
  if (/^RTMIN(\+\d+)?$|^RTMAX(-\d+)?$/.test(name)) return;
  fail(`STOPSIGNAL: invalid signal "${v}"`);
}

function parseCopy(kw: 'copy' | 'add', node: Node, flags: Flags, base: { location: SourceLocation; original: string }): CopyInstruction {
  const KW = kw.toUpperCase();
  const args = node.args;
  const heredocSources = node.heredocs.length;
  if (args.length < 2 && !(heredocSources && args.length >= 1 && args.some((a) => parseHeredocWordSafe(a)))) {
    fail(`${KW} requires at least two arguments, but only ${args.length === 0 ? 'none were' : 'one was'} provided. Destination could not be determined`);
  }
  if (args.length < 2) fail(`${KW} requires a destination after the heredoc`);
  const chmod = flags.string('chmod');
  if (chmod !== undefined && isLiteral(chmod)) {
    const bad = checkChmod(chmod);
    if (bad) throw new InstructionError(bad, '--chmod');
  }
  const chown = flags.string('chown');
  if (chown !== undefined && chown === '') throw new InstructionError('--chown needs a user (USER[:GROUP])', '--chown');
  const checksum = flags.string('checksum');
  if (checksum !== undefined && isLiteral(checksum) && !/^sha(256|384|512):[0-9a-f]+$|^[0-9a-f]{4,64}$/.test(checksum)) {
    throw new InstructionError(`invalid checksum "${checksum}": expected sha256:<hex> (a URL) or a commit (a git repository)`, '--checksum');
  }
  const from = flags.string('from');
  if (from === '') throw new InstructionError('--from needs a stage name, index or image', '--from');
  return {
    location: base.location,
    original: base.original,
    kind: kw,
    srcs: args.slice(0, -1),
    dest: args.at(-1)!,
    heredocs: node.heredocs,
    from,
    chown,
    chmod,
    link: flags.bool('link') ?? false,
    parents: flags.bool('parents') ?? false,
    exclude: flags.list('exclude'),
    checksum,
    keepGitDir: flags.bool('keep-git-dir'),
    unpack: flags.bool('unpack'),
  };
}

function parseHeredocWordSafe(w: string): boolean {
  try {
    return parseHeredocWord(w) !== undefined;
  } catch {
    return false;
  }
}

const MIN_INTERVAL_NS = 1e6;

function parseHealthcheck(node: Node, flags: Flags, base: { location: SourceLocation; original: string }): HealthcheckInstruction {
  const args = node.args;
  if (args.length === 0) fail('HEALTHCHECK requires at least one argument');
  const typ = args[0]!.toUpperCase();
  if (typ === 'NONE') {
    if (args.length > 1) fail('HEALTHCHECK NONE takes no arguments');
    // BuildKit never reads the options of HEALTHCHECK NONE: they are accepted and mean nothing.
    return { location: base.location, original: base.original, kind: 'healthcheck', test: ['NONE'] };
  }
  if (typ !== 'CMD') fail(`unknown type "${args[0]}" in HEALTHCHECK (try CMD)`);
  const cmd = args.slice(1);
  if (cmd.length === 0) fail('missing command after HEALTHCHECK CMD');
  const test = node.json ? ['CMD', ...cmd] : ['CMD-SHELL', cmd[0]!];
  const duration = (name: string): number | undefined => {
    const v = flags.string(name);
    if (v === undefined) return undefined;
    let ns: number;
    try {
      ns = parseGoDuration(v);
    } catch (e) {
      throw new InstructionError(`--${name}: ${(e as Error).message}`, `--${name}`);
    }
    if (ns < 0) throw new InstructionError(`--${name} "${v}" cannot be negative`, `--${name}`);
    if (ns !== 0 && ns < MIN_INTERVAL_NS) throw new InstructionError(`--${name} "${v}" cannot be less than 1ms`, `--${name}`);
    return ns;
  };
  const h: HealthcheckInstruction = {
    location: base.location,
    original: base.original,
    kind: 'healthcheck',
    test,
    interval: duration('interval'),
    timeout: duration('timeout'),
    startPeriod: duration('start-period'),
    startInterval: duration('start-interval'),
  };
  const retries = flags.string('retries');
  if (retries !== undefined) {
    if (!/^-?\d+$/.test(retries)) throw new InstructionError(`--retries: invalid number "${retries}"`, '--retries');
    if (Number(retries) < 0) throw new InstructionError('--retries cannot be negative', '--retries');
    h.retries = Number(retries);
  }
  return h;
}
