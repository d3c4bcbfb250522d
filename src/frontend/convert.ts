// Dockerfile -> BuildGraph: stage selection, argument scoping, variable expansion, and the ops,
// image config and history of every stage the target needs.

import type {
  BuildGraph, Diagnostic, Digest, GraphNode, HistoryStep, Op, SourceLocation, Stage,
} from '../graph/ops.js';
import type { ImageConfig, ImageConfigFile, Platform } from '../image/types.js';
import { KilnError } from '../util/errors.js';
import { defaultPlatform, formatPlatform, normalizePlatform, parsePlatform } from '../registry/platform.js';
import { isStandardFrontend, parseCheckBuildArg, parseDockerfileText } from './parse.js';
import { parseInstructions, parseInstruction, type StageSpec } from './instructions/parse.js';
import type { Instruction } from './instructions/types.js';
import { parseDockerfile } from './parser/parser.js';
import { ShellLex, ShellError, type EnvLookup, type ExpandResult } from './shell/lex.js';
import { StageScope, envGet, DEFAULT_PATH, isProxyBuildArg, proxyEnvFromBuildArgs } from './scope.js';
import { dispatch } from './dispatch.js';
import { applyCheckDirective, lint, lintMessages } from './lint.js';
import { dockerfileWideWarnings } from './lint-rules.js';
import { fromLineWarnings } from './lint-from.js';
import { contextSourceName, namedContextKey, type FolderContext, type NamedContext } from './named-contexts.js';

export interface ResolvedImage {
  ref: string;
  digest: Digest;
  config: ImageConfigFile;
}

export interface FrontendInput {
  dockerfile: string;
  dockerfileName: string;
  buildArgs: Map<string, string>;
  /** Stage name or index. */
  target?: string;
  platform: Platform;
  ignorePatterns: string[];
  /** Convert every stage, not only those the target needs (for --check). */
  allStages?: boolean;
  /** --build-context, by namedContextKey. */
  namedContexts?: Map<string, NamedContext>;
  resolveImage(ref: string, platform: Platform): Promise<ResolvedImage>;
}


/** BuildKit's predefined args: the platforms, and the name of the stage being built. */
function predefinedArgs(target: Platform, build: Platform, targetStage: string): Map<string, string> {
  return new Map([
    ['TARGETPLATFORM', formatPlatform(target)], ['TARGETOS', target.os], ['TARGETOSVERSION', ''], ['TARGETARCH', target.architecture], ['TARGETVARIANT', target.variant ?? ''],
    ['BUILDPLATFORM', formatPlatform(build)], ['BUILDOS', build.os], ['BUILDOSVERSION', ''], ['BUILDARCH', build.architecture], ['BUILDVARIANT', build.variant ?? ''],
    ['TARGETSTAGE', targetStage],
  ]);
}

/** Everything a stage conversion shares. */
export interface Ctx {
  input: FrontendInput;
  nodes: Record<string, GraphNode>;
  warnings: Diagnostic[];
  lex: ShellLex;
  metaLookup: EnvLookup;
  proxies: Map<string, string>;
  stageRoot(index: number): Promise<string>;
  /** Build args that some converted ARG (or the proxy list) consumed. */
  usedBuildArgs: Set<string>;
  /** Declared before the first FROM, or one of the predefined platform args. */
  hasGlobalArg(name: string): boolean;
  /** Node id for `--from` / `from=`: a stage root or an image source (pulled for `platform`). */
  sourceNode(ref: string, loc: SourceLocation, platform: Platform): Promise<string>;
  contextNode(): string;
  fail(message: string, loc: SourceLocation): never;
  expand(word: string, env: EnvLookup, loc: SourceLocation): string;
  /** `expand`, also naming the variables the word used, set or not. */
  expandWithMatches(word: string, env: EnvLookup, loc: SourceLocation): ExpandResult;
  expandWords(word: string, env: EnvLookup, loc: SourceLocation): string[];
}

/** The state of the stage being converted, as the instruction converters see it. */
export interface StageState {
  index: number;
  display: string;
  config: ImageConfig;
  scope: StageScope;
  current: string;
  history: HistoryStep[];
  step: number;
  total: number;
  nodeName(ins: Instruction): string;
  addNode(op: Op, inputs: string[], ins: Instruction): string;
  /** The stage's platform. */
  platform: Platform;
  author?: string;
  /** CMD was set in this stage (ENTRYPOINT then keeps it). */
  cmdSet?: boolean;
  workdirSet?: boolean;
  /** Where this stage last set CMD, ENTRYPOINT or HEALTHCHECK: only the last of each counts. */
  lastSetAt: Map<'cmd' | 'entrypoint' | 'healthcheck', SourceLocation>;
}

type StageRef =
  | { kind: 'stage'; index: number }
  | { kind: 'image'; ref: string }
  | { kind: 'scratch' }
  /** A folder given with --build-context. */
  | { kind: 'context'; context: FolderContext };

export async function dockerfileToGraph(input: FrontendInput): Promise<BuildGraph> {
  const df = parseDockerfileText(input.dockerfile, input.dockerfileName);
  const { metaArgs, stages } = parseInstructions(df, input.dockerfile);
  const warnings: Diagnostic[] = [...df.diagnostics];
  const lex = new ShellLex({ escapeToken: df.escapeToken });
  const fail = (message: string, loc: SourceLocation): never => {
    throw new KilnError(message, { location: { file: loc.file, line: loc.line, column: loc.column } });
  };
  const expandWithMatches = (word: string, env: EnvLookup, loc: SourceLocation): ExpandResult => {
    try {
      return lex.processWordWithMatches(word, env);
    } catch (e) {
      if (e instanceof ShellError) return fail(e.message, loc);
      throw e;
    }
  };
  const expand = (word: string, env: EnvLookup, loc: SourceLocation): string => expandWithMatches(word, env, loc).result;
  const expandWords = (word: string, env: EnvLookup, loc: SourceLocation): string[] => {
    try {
      return lex.processWords(word, env);
    } catch (e) {
      if (e instanceof ShellError) return fail(e.message, loc);
      throw e;
    }
  };

  // ---- global scope: predefined platform args, then ARGs before the first FROM
  const predefined = predefinedArgs(input.platform, defaultPlatform(), input.target ?? stages.at(-1)?.from.stageName?.toLowerCase() ?? '');
  const meta = new Map<string, string | undefined>();
  const metaLookup: EnvLookup = { get: (n) => (meta.has(n) ? meta.get(n) : predefined.get(n)) };
  const usedBuildArgs = new Set<string>();
  for (const a of metaArgs) {
    for (const arg of a.args) {
      let value: string | undefined;
      if (input.buildArgs.has(arg.key)) {
        value = input.buildArgs.get(arg.key);
        usedBuildArgs.add(arg.key);
      } else if (arg.value !== undefined) value = expand(arg.value, metaLookup, a.location);
      else value = predefined.get(arg.key);
      meta.set(arg.key, value);
    }
  }
  const proxies = proxyEnvFromBuildArgs(input.buildArgs);
  for (const k of input.buildArgs.keys()) if (isProxyBuildArg(k)) usedBuildArgs.add(k);

  // ---- stage table
  warnings.push(...dockerfileWideWarnings(stages));
  warnings.push(...fromLineWarnings(stages, {
    lookup: metaLookup, names: [...new Set([...meta.keys(), ...predefined.keys()])], predefined, metaArgs,
  }, lex));
  const byName = new Map<string, number>();
  for (const s of stages) {
    const name = s.from.stageName?.toLowerCase();
    if (name === undefined) continue;
    if (byName.has(name)) fail(`duplicate stage name "${name}"`, s.from.location);
    byName.set(name, s.index);
  }
  /** `before`: the index of the stage whose FROM this is, which sees only the stages above it. */
  const refOf = (value: string, loc: SourceLocation, allowIndex: boolean, before = stages.length): StageRef => {
    if (allowIndex && /^\d+$/.test(value)) {
      const i = Number(value);
      if (i >= stages.length) fail(`invalid stage index ${i}: the Dockerfile has ${stages.length} stage(s)`, loc);
      return { kind: 'stage', index: i };
    }
    // A named context replaces a stage or an image of its name, as in BuildKit.
    const key = input.namedContexts?.size ? namedContextKey(value) : undefined;
    const named = key === undefined ? undefined : input.namedContexts!.get(key);
    if (named?.kind === 'dir') return { kind: 'context', context: named };
    if (named?.kind === 'image') return named.ref === 'scratch' ? { kind: 'scratch' } : { kind: 'image', ref: named.ref };
    const byStage = byName.get(value.toLowerCase());
    if (byStage !== undefined && byStage < before) return { kind: 'stage', index: byStage };
    if (value.toLowerCase() === 'scratch') return { kind: 'scratch' };
    return { kind: 'image', ref: value };
  };
  const baseRefs = stages.map((s) => {
    const image = expand(s.from.image, metaLookup, s.from.location);
    if (image === '') fail(`base name (${s.from.image}) should not be blank`, s.from.location);
    return refOf(image, s.from.location, false, s.index);
  });
  const fromRefs = (s: StageSpec): { ref: StageRef; loc: SourceLocation }[] => {
    const out: { ref: StageRef; loc: SourceLocation }[] = [];
    for (const c of s.commands) {
      if (c.kind === 'copy' && c.from !== undefined) {
        out.push({ ref: refOf(expand(c.from, metaLookup, c.location), c.location, true), loc: c.location });
      }
      if (c.kind === 'run') {
        for (const m of c.mounts) {
          const from = m.options.get('from');
          if (from !== undefined) out.push({ ref: refOf(expand(from, metaLookup, c.location), c.location, true), loc: c.location });
        }
      }
    }
    return out;
  };
  const deps = stages.map((s) => {
    const d = new Set<number>();
    const b = baseRefs[s.index]!;
    if (b.kind === 'stage') d.add(b.index);
    for (const { ref } of fromRefs(s)) if (ref.kind === 'stage') d.add(ref.index);
    return d;
  });

  // ---- target and the stages it needs
  let target = stages.length - 1;
  if (input.target !== undefined) {
    const t = /^\d+$/.test(input.target) ? Number(input.target) : byName.get(input.target.toLowerCase());
    if (t === undefined || t >= stages.length) throw new KilnError(`target stage "${input.target}" could not be found`, { exitCode: 2 });
    target = t;
  }
  const needed = new Set<number>();
  const onPath = new Set<number>();
  const visit = (i: number) => {
    if (onPath.has(i)) fail(`circular dependency detected on stage: ${stages[i]!.from.stageName ?? i}`, stages[i]!.from.location);
    if (needed.has(i)) return;
    onPath.add(i);
    for (const d of deps[i]!) visit(d);
    onPath.delete(i);
    needed.add(i);
  };
  visit(target);
  // --check looks at every stage, as BuildKit's check does when no target is given.
  if (input.allStages && input.target === undefined) stages.forEach((s) => visit(s.index));

  // ---- shared sources
  const nodes: Record<string, GraphNode> = {};
  const imageNodes = new Map<string, Promise<{ id: string; config: ImageConfigFile }>>();
  const resolveImageNode = (ref: string, platform: Platform, loc: SourceLocation) => {
    const key = `${ref}|${formatPlatform(platform)}`;
    let p = imageNodes.get(key);
    if (!p) {
      p = (async () => {
        let r: ResolvedImage;
        try {
          r = await input.resolveImage(ref, platform);
        } catch (e) {
          if (e instanceof KilnError && e.location) throw e;
          return fail(`image ${ref}: ${(e as Error).message}`, loc);
        }
        const id = `image:${r.ref}@${r.digest}|${formatPlatform(platform)}`;
        nodes[id] ??= { id, op: { kind: 'source.image', ref: r.ref, digest: r.digest, platform }, inputs: [], name: `[internal] load ${r.ref}` };
        return { id, config: r.config };
      })();
      imageNodes.set(key, p);
    }
    return p;
  };
  const contextNode = (named?: FolderContext) => {
    const id = contextSourceName(named?.name);
    const patterns = named ? named.ignorePatterns : input.ignorePatterns;
    nodes[id] ??= { id, op: { kind: 'source.context', name: id, excludePatterns: [...patterns] }, inputs: [], name: `[internal] load build context${named ? ` ${named.name}` : ''}` };
    return id;
  };

  const converted = new Map<number, Promise<Stage>>();
  /** Each converted stage's variables at its end, which a stage built FROM it carries on. */
  const scopes = new Map<number, StageScope>();
  const convertStage = (i: number): Promise<Stage> => {
    let p = converted.get(i);
    if (!p) {
      p = doConvertStage(stages[i]!);
      converted.set(i, p);
    }
    return p;
  };

  const ctx: Ctx = {
    input, nodes, warnings, lex, metaLookup, proxies, fail, expand, expandWithMatches, expandWords, contextNode, usedBuildArgs,
    hasGlobalArg: (n) => meta.has(n) || predefined.has(n),
    stageRoot: async (i) => (await convertStage(i)).root,
    sourceNode: async (value, loc, platform) => {
      const ref = refOf(value, loc, true);
      if (ref.kind === 'stage') return (await convertStage(ref.index)).root;
      if (ref.kind === 'scratch') return scratchNode();
      if (ref.kind === 'context') return contextNode(ref.context);
      return (await resolveImageNode(ref.ref, platform, loc)).id;
    },
  };
  const scratchNode = () => {
    nodes['scratch'] ??= { id: 'scratch', op: { kind: 'source.scratch' }, inputs: [], name: 'scratch' };
    return 'scratch';
  };

  async function doConvertStage(spec: StageSpec): Promise<Stage> {
    const from = spec.from;
    const loc = from.location;
    let platform = input.platform;
    if (from.platform !== undefined) {
      const p = expand(from.platform, metaLookup, loc);
      try {
        platform = parsePlatform(p, 'FROM --platform');
      } catch (e) {
        fail((e as Error).message, loc);
      }
    }
    const base = baseRefs[spec.index]!;
    let baseId: string;
    let config: ImageConfig;
    let author: string | undefined;
    let baseScope: StageScope | undefined;
    if (base.kind === 'scratch' || base.kind === 'context') {
      baseId = scratchNode();
      config = { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: '/' };
    } else if (base.kind === 'stage') {
      const st = await convertStage(base.index);
      // A stage built on another stage runs on that stage's platform unless told otherwise.
      if (from.platform === undefined) platform = st.platform;
      baseId = st.root;
      config = structuredClone(st.config);
      author = st.author;
      baseScope = scopes.get(base.index);
    } else {
      const img = await resolveImageNode(base.ref, platform, loc);
      // An image of one platform is used whatever --platform says (there is no other to pick);
      // as in BuildKit, the stage and its image keep the platform the image is, with a warning.
      const own = img.config.architecture && img.config.os
        ? normalizePlatform({ os: img.config.os, architecture: img.config.architecture, ...(img.config.variant ? { variant: img.config.variant } : {}) })
        : undefined;
      if (own && formatPlatform(own) !== formatPlatform(platform)) {
        warnings.push(lint('InvalidBaseImagePlatform', lintMessages.InvalidBaseImagePlatform(base.ref, formatPlatform(own), formatPlatform(platform)), loc));
        platform = own;
      }
      baseId = img.id;
      config = structuredClone(img.config.config ?? {});
      author = img.config.author;
    }
    if (envGet(config.Env ?? [], 'PATH') === undefined) config.Env = [...(config.Env ?? []), `PATH=${DEFAULT_PATH}`];

    // ONBUILD triggers of the base run first, then are consumed.
    const triggers: Instruction[] = [];
    for (const t of config.OnBuild ?? []) {
      let parsed;
      try {
        parsed = parseDockerfile(t);
      } catch (e) {
        fail(`ONBUILD trigger "${t}" of the base image: ${(e as Error).message}`, loc);
      }
      for (const n of parsed!.nodes) {
        try {
          triggers.push(parseInstruction(n, loc, parsed!.escapeToken));
        } catch (e) {
          fail(`ONBUILD trigger "${t}" of the base image: ${(e as Error).message}`, loc);
        }
      }
    }
    delete config.OnBuild;

    const display = from.stageName ?? `stage-${spec.index}`;
    const commands = [...triggers, ...spec.commands];
    const total = commands.length + 1;
    const width = String(total).length;
    const history: HistoryStep[] = [];
    const st: StageState = {
      index: spec.index, display, config, scope: new StageScope(config.Env ?? [], baseScope), current: baseId, history, step: 1, total, platform,
      lastSetAt: new Map(),
      nodeName(ins) {
        const kw = ins.original.split(/\s/, 1)[0]!;
        return `[${display} ${String(this.step).padStart(width, ' ')}/${total}] ${kw.toUpperCase()}${ins.original.slice(kw.length)}`;
      },
      addNode(op, inputs, ins) {
        this.step++;
        const id = `s${spec.index}.${this.step}`;
        nodes[id] = {
          id, op, inputs, stage: spec.index, name: this.nodeName(ins), location: ins.location,
          instruction: ins.original.replace(/^\S+\s*/, ''),
        };
        this.current = id;
        return id;
      },
    };

    if (base.kind === 'context') {
      // FROM a folder context: its files, copied onto scratch, are the stage's first layer.
      const id = `s${spec.index}.1`;
      nodes[id] = {
        id, stage: spec.index, name: `[${display} 1/${total}] FROM ${base.context.name}`, location: loc, instruction: from.original.replace(/^\S+\s*/, ''),
        op: { kind: 'file', actions: [{ action: 'copy', from: 1, src: ['/'], dest: '/', link: false, parents: false, exclude: [], add: false }] },
        inputs: [baseId, contextNode(base.context)],
      };
      st.current = id;
      history.push({ createdBy: `COPY / / # FROM ${base.context.name} (--build-context)`, nodeId: id });
    }
    for (const ins of commands) {
      await dispatch(ctx, st, ins);
    }
    st.config.Env = st.scope.env;
    scopes.set(spec.index, st.scope);
    const stage: Stage = {
      index: spec.index, platform, root: st.current, config: st.config, history, base: baseId,
      ...(base.kind === 'stage' ? { baseStage: base.index } : {}),
      ...(from.stageName ? { name: from.stageName.toLowerCase() } : {}),
      ...(author !== undefined || st.author !== undefined ? { author: st.author ?? author } : {}),
    };
    return stage;
  }

  const out = await Promise.all([...needed].sort((a, b) => a - b).map((i) => convertStage(i)));
  for (const k of input.buildArgs.keys()) {
    // BUILDKIT_* args are options to the builder (BUILDKIT_INLINE_CACHE), not ARGs.
    if (!usedBuildArgs.has(k) && !predefined.has(k) && !k.startsWith('BUILDKIT_') && k !== 'SOURCE_DATE_EPOCH') {
      warnings.push({ level: 'warning', message: `build arg ${k} was given but no ARG in the stages built declares it`, rule: 'UnusedBuildArg' });
    }
  }
  // BuildKit runs the frontend image BUILDKIT_SYNTAX names in place of the syntax directive's.
  const syntaxImage = input.buildArgs.get('BUILDKIT_SYNTAX')?.split(/\s/)[0];
  if (syntaxImage && !isStandardFrontend(syntaxImage)) {
    warnings.push({
      level: 'warning',
      message: `--build-arg BUILDKIT_SYNTAX names frontend image "${syntaxImage}": kiln ignores it and uses its built-in Dockerfile frontend`,
      rule: 'SyntaxDirective',
    });
  }
  const checkArg = input.buildArgs.get('BUILDKIT_DOCKERFILE_CHECK');
  const check = checkArg === undefined ? df.check : parseCheckBuildArg(checkArg);
  return { nodes, stages: out, target, warnings: applyCheckDirective(warnings, check) };
}
