// RUN -> exec op: argv (shell, heredocs), environment, mounts with BuildKit's defaults.

import { posix } from 'node:path';
import type { EphemeralFile, ExecOp, NetworkMode, RunMount, SecurityMode } from '../graph/ops.js';
import type { RunInstruction } from './instructions/types.js';
import { checkMountValue, MountError, parseSize } from './instructions/mounts.js';
import { parseHeredocWord, chompHeredocContent } from './parser/heredoc.js';
import { withShell } from './shell-form.js';
import type { Ctx, StageState } from './convert.js';
import { expandInStage } from './stage-vars.js';
import { goClean } from './gopath.js';
import { KilnError } from '../util/errors.js';

function heredocWordOf(text: string): ReturnType<typeof parseHeredocWord> {
  try {
    return parseHeredocWord(text);
  } catch {
    return undefined;
  }
}

/** `--build-arg BUILDKIT_SANDBOX_HOSTNAME=NAME`, BuildKit's host name for RUN steps (the kernel takes 64 bytes). */
function sandboxHostname(buildArgs: Map<string, string>): string | undefined {
  const v = buildArgs.get('BUILDKIT_SANDBOX_HOSTNAME');
  if (v === undefined || v === '') return undefined;
  if (Buffer.byteLength(v) > 64 || /[\s/]/.test(v)) {
    throw new KilnError(`--build-arg BUILDKIT_SANDBOX_HOSTNAME: ${JSON.stringify(v)} is not a host name (at most 64 bytes, no spaces or slashes)`, { exitCode: 2 });
  }
  return v;
}

/** The argv of a RUN, with BuildKit's heredoc rules, and the files the step needs. */
export function runArgs(st: StageState, ins: RunInstruction): { args: string[]; files: EphemeralFile[] } {
  let args = [...ins.cmdLine];
  const files: EphemeralFile[] = [];
  if (ins.heredocs.length && args.length === 1 && ins.prependShell) {
    const first = ins.heredocs[0]!;
    if (heredocWordOf(args[0]!)) {
      const data = first.chomp ? chompHeredocContent(first.content) : first.content;
      if (data.startsWith('#!')) {
        // A script with its own interpreter: mounted as an executable file and run.
        const path = posix.join('/dev/pipes/', first.name);
        files.push({ path, content: data, mode: 0o755 });
        args = [path];
      } else {
        args = [data];
      }
    } else {
      // Several heredocs or a command around them: the shell gets the whole document.
      let full = args[0]!;
      for (const h of ins.heredocs) full += '\n' + h.content + h.name;
      args = [full];
    }
  }
  if (ins.prependShell) args = withShell(st.config, args);
  return { args, files };
}

export async function convertRun(ctx: Ctx, st: StageState, ins: RunInstruction): Promise<{ createdBy: string; nodeId: string }> {
  const loc = ins.location;
  const { args, files } = runArgs(st, ins);
  const inputs = [st.current];
  const inputIndex = (id: string) => {
    const i = inputs.indexOf(id);
    if (i >= 0) return i;
    inputs.push(id);
    return inputs.length - 1;
  };
  const cwd = st.config.WorkingDir || '/';
  const mounts: RunMount[] = [];
  let sshCount = 0;
  for (const m of ins.mounts) {
    const o = new Map<string, string>();
    for (const [k, v] of m.options) {
      // `from` names a stage or image, resolved in the global scope like COPY --from.
      const value = k === 'from' ? ctx.expand(v, ctx.metaLookup, loc) : expandInStage(ctx, st, v, loc);
      try {
        checkMountValue(k, value);
      } catch (e) {
        if (e instanceof MountError) ctx.fail(e.message, loc);
        throw e;
      }
      o.set(k, value);
    }
    const abs = (p: string) => goClean(p.startsWith('/') ? p : posix.join('/', cwd, p));
    const target = o.get('target') ? abs(o.get('target')!) : undefined;
    const bool = (k: string, dflt: boolean) => (o.has(k) ? o.get(k) === 'true' : dflt);
    const num = (k: string, dflt: number, base = 10) => (o.has(k) ? parseInt(o.get(k)!, base) : dflt);
    const fromInput = async () => {
      const from = o.get('from');
      return from === undefined ? undefined : inputIndex(await ctx.sourceNode(from, loc, st.platform));
    };
    switch (m.type) {
      case 'bind': {
        const from = (await fromInput()) ?? inputIndex(ctx.contextNode());
        mounts.push({ type: 'bind', target: target!, from, source: o.get('source') ?? '/', readwrite: !bool('readonly', true) });
        break;
      }
      case 'cache': {
        const from = await fromInput();
        // BuildKit's default id is the target as written (a relative one is not joined to the
        // WORKDIR), and BUILDKIT_CACHE_MOUNT_NS puts every id of the build in a namespace.
        const id = o.get('id') || goClean(o.get('target')!);
        const ns = ctx.input.buildArgs.get('BUILDKIT_CACHE_MOUNT_NS');
        // BuildKit's seed: with a source, that folder of `from` as it is (uid, gid and mode are
        // ignored); else, with uid, gid or mode, a new empty folder with them; else all of `from`.
        const source = o.get('source') ?? '/';
        const perms = o.has('uid') || o.has('gid') || o.has('mode');
        const seed = from !== undefined && (goClean(`/${source}`) !== '/' || !perms) ? { from } : {};
        mounts.push({
          type: 'cache', target: target!, id: ns ? `${ns}/${id}` : id, sharing: (o.get('sharing') ?? 'shared') as 'shared',
          ...seed, source, readonly: bool('readonly', false),
          mode: num('mode', 0o755, 8), uid: num('uid', 0), gid: num('gid', 0),
        });
        break;
      }
      case 'tmpfs': {
        const size = o.get('size');
        mounts.push({ type: 'tmpfs', target: target!, ...(size ? { size: parseSize(size) } : {}) });
        break;
      }
      case 'secret': {
        const id = o.get('id') || posix.basename(target!);
        const envName = o.get('env');
        const secretTarget = target ?? (envName ? undefined : `/run/secrets/${id}`);
        mounts.push({
          type: 'secret', id, ...(secretTarget ? { target: secretTarget } : {}), ...(envName ? { env: envName } : {}),
          required: bool('required', false), mode: num('mode', 0o400, 8), uid: num('uid', 0), gid: num('gid', 0),
        });
        break;
      }
      case 'ssh': {
        mounts.push({
          type: 'ssh', id: o.get('id') || 'default', target: target ?? `/run/buildkit/ssh_agent.${sshCount}`,
          required: bool('required', false), mode: num('mode', 0o600, 8), uid: num('uid', 0), gid: num('gid', 0),
        });
        sshCount++;
        break;
      }
    }
  }
  const network = (ins.network ?? 'default') as NetworkMode;
  const security = (ins.security ?? 'sandbox') as SecurityMode;
  if (!['default', 'none', 'host'].includes(network)) ctx.fail(`unsupported network mode "${network}" (default, none or host)`, loc);
  if (!['sandbox', 'insecure'].includes(security)) ctx.fail(`unsupported security mode "${security}" (sandbox or insecure)`, loc);
  const { env: execEnv, proxyEnv } = st.scope.execEnv(ctx.proxies);
  // Part of the RUN's key, as in BuildKit (a step may write its host name into a file).
  const hostname = sandboxHostname(ctx.input.buildArgs);
  const op: ExecOp = {
    kind: 'exec', args, env: execEnv, cwd, user: st.config.User ?? '', network, security, mounts, files,
    ...(proxyEnv.length ? { proxyEnv } : {}),
    ...(hostname !== undefined ? { hostname } : {}),
  };
  const nodeId = st.addNode(op, inputs, ins);
  return { createdBy: `RUN ${st.scope.runHistoryPrefix()}${args.join(' ')} # buildkit`, nodeId };
}
