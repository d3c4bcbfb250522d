// One instruction applied to a stage being converted: image config, history, and the ops of
// RUN, COPY, ADD and WORKDIR.

import { posix } from 'node:path';
import type { HealthConfig } from '../image/types.js';
import type { CmdInstruction, HealthcheckInstruction, Instruction } from './instructions/types.js';
import { parseExposePort } from './instructions/values.js';
import { goDuration, goList, goQuote, goQuoteList, goQuoteRune, goSetMap } from './gofmt.js';
import { convertRun } from './convert-run.js';
import { convertCopy } from './convert-copy.js';
import { lint, lintMessages } from './lint.js';
import { hasUpperCaseProtocol, looksLikeSecret, writtenKeyword } from './lint-rules.js';
import { expandInStage } from './stage-vars.js';
import { withShell } from './shell-form.js';
import { parseChown } from './instructions/values.js';
import type { Ctx, StageState } from './convert.js';

/**
 * MultipleInstructionsDisallowed: a second CMD, ENTRYPOINT or HEALTHCHECK in a stage makes the
 * earlier one dead, so the earlier one is where the warning points.
 */
function warnIfSetBefore(ctx: Ctx, st: StageState, ins: CmdInstruction | HealthcheckInstruction): void {
  const earlier = st.lastSetAt.get(ins.kind);
  if (earlier) ctx.warnings.push(lint('MultipleInstructionsDisallowed', lintMessages.MultipleInstructionsDisallowed(writtenKeyword(ins)), earlier));
  st.lastSetAt.set(ins.kind, ins.location);
}

/** Applies one instruction to the stage: config changes, history, and ops for RUN/COPY/ADD/WORKDIR. */
export async function dispatch(ctx: Ctx, st: StageState, ins: Instruction): Promise<void> {
  const { input, warnings, fail } = ctx;
  const loc = ins.location;
  // Every word of an instruction sees the variables as they were before it: ENV applies its
  // pairs only after expanding all of them.
  const expand = (word: string) => expandInStage(ctx, st, word, loc);
  const hist = (createdBy: string, nodeId?: string) => st.history.push({ createdBy, comment: 'buildkit.dockerfile.v0', ...(nodeId ? { nodeId } : {}) });
  const c = st.config;
  switch (ins.kind) {
    case 'env': {
      const pairs = ins.pairs.map((p) => [expand(p.key), expand(p.value)] as const);
      if (ins.legacy) warnings.push(lint('LegacyKeyValueFormat', lintMessages.LegacyKeyValueFormat('ENV'), loc));
      for (const [k] of pairs) if (looksLikeSecret(k)) warnings.push(lint('SecretsUsedInArgOrEnv', lintMessages.SecretsUsedInArgOrEnv('ENV', k), loc));
      for (const [k, v] of pairs) st.scope.setEnv(k, v);
      hist(`ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`);
      return;
    }
    case 'label': {
      const pairs = ins.pairs.map((p) => [expand(p.key), expand(p.value)] as const);
      if (ins.legacy) warnings.push(lint('LegacyKeyValueFormat', lintMessages.LegacyKeyValueFormat('LABEL'), loc));
      c.Labels ??= {};
      for (const [k, v] of pairs) c.Labels[k] = v;
      hist(`LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`);
      return;
    }
    case 'maintainer':
      st.author = ins.value;
      hist(`MAINTAINER ${ins.value}`);
      return;
    case 'expose': {
      const ports: string[] = [];
      // EXPOSE splits its words itself: BuildKit does not check them for undefined variables.
      for (const p of ins.ports) {
        for (const w of ctx.expandWords(p, st.scope.lookup(), loc)) {
          if (hasUpperCaseProtocol(w)) warnings.push(lint('ExposeProtoCasing', lintMessages.ExposeProtoCasing(w), loc));
          try {
            ports.push(...parseExposePort(w));
          } catch (e) {
            fail(`EXPOSE: ${(e as Error).message}`, loc);
          }
        }
      }
      c.ExposedPorts ??= {};
      for (const p of ports) c.ExposedPorts[p] = {};
      hist(`EXPOSE ${goSetMap(ports)}`);
      return;
    }
    case 'user': {
      const u = expand(ins.value);
      c.User = u;
      hist(`USER ${u}`);
      return;
    }
    case 'workdir': {
      const w = expand(ins.value);
      if (!st.workdirSet && !w.startsWith('/')) warnings.push(lint('WorkdirRelativePath', lintMessages.WorkdirRelativePath(w), loc));
      st.workdirSet = true;
      const abs = posix.normalize(w.startsWith('/') ? w : posix.join('/', c.WorkingDir || '/', w));
      const clean = abs.length > 1 ? abs.replace(/\/+$/, '') : abs;
      c.WorkingDir = clean;
      if (clean !== '/') {
        const id = st.addNode({ kind: 'file', actions: [{ action: 'mkdir', path: clean, mode: 0o755, ...(c.User ? { chown: parseChown(c.User) } : {}) }] }, [st.current], ins);
        hist(`WORKDIR ${clean}`, id);
      } else hist(`WORKDIR ${clean}`);
      return;
    }
    case 'volume': {
      const vols = ins.volumes.map(expand);
      for (const v of vols) if (v === '') fail('VOLUME specified can not be an empty string', loc);
      c.Volumes ??= {};
      for (const v of vols) c.Volumes[v] = {};
      hist(`VOLUME ${goList(vols)}`);
      return;
    }
    case 'stopsignal': {
      const s = expand(ins.value);
      c.StopSignal = s;
      hist(`STOPSIGNAL ${s}`);
      return;
    }
    case 'cmd':
    case 'entrypoint': {
      warnIfSetBefore(ctx, st, ins);
      if (ins.prependShell && !(c.Shell && c.Shell.length)) {
        warnings.push(lint('JSONArgsRecommended', lintMessages.JSONArgsRecommended(ins.kind.toUpperCase()), loc));
      }
      const args = ins.prependShell ? withShell(c, ins.cmdLine) : [...ins.cmdLine];
      if (ins.kind === 'cmd') {
        c.Cmd = args;
        c.ArgsEscaped = true;
        st.cmdSet = true;
        hist(`CMD ${goQuoteList(args)}`);
      } else {
        c.Entrypoint = args;
        if (!st.cmdSet) c.Cmd = null;
        hist(`ENTRYPOINT ${goQuoteList(args)}`);
      }
      return;
    }
    case 'shell':
      c.Shell = [...ins.shell];
      hist(`SHELL ${goList(ins.shell)}`);
      return;
    case 'healthcheck': {
      warnIfSetBefore(ctx, st, ins);
      if (ins.test[0] === 'NONE') {
        c.Healthcheck = { Test: ['NONE'] };
      } else {
        const h: HealthConfig = { Test: ins.test };
        if (ins.interval) h.Interval = ins.interval;
        if (ins.timeout) h.Timeout = ins.timeout;
        if (ins.startPeriod) h.StartPeriod = ins.startPeriod;
        if (ins.startInterval) h.StartInterval = ins.startInterval;
        if (ins.retries) h.Retries = ins.retries;
        c.Healthcheck = h;
      }
      const h = c.Healthcheck;
      hist(`HEALTHCHECK &{${goQuoteList(h.Test ?? [])} ${[h.Interval, h.Timeout, h.StartPeriod, h.StartInterval].map((d) => goQuote(goDuration(d ?? 0))).join(' ')} ${goQuoteRune(h.Retries ?? 0)}}`);
      return;
    }
    case 'onbuild':
      c.OnBuild = [...(c.OnBuild ?? []), ins.expression];
      return;
    case 'arg': {
      const parts: string[] = [];
      for (const a of ins.args) {
        if (looksLikeSecret(a.key)) warnings.push(lint('SecretsUsedInArgOrEnv', lintMessages.SecretsUsedInArgOrEnv('ARG', a.key), loc));
        let value: string | undefined;
        if (input.buildArgs.has(a.key)) {
          value = input.buildArgs.get(a.key);
          ctx.usedBuildArgs.add(a.key);
        } else if (a.value !== undefined) value = expand(a.value);
        else if (ctx.hasGlobalArg(a.key)) value = ctx.metaLookup.get(a.key);
        // With a value, the ARG is set for RUN and expansion over an earlier ENV (scope.ts).
        st.scope.declare({ key: a.key, value });
        parts.push(value === undefined ? a.key : `${a.key}=${value}`);
      }
      hist(`ARG ${parts.join(' ')}`);
      return;
    }
    case 'run': {
      const r = await convertRun(ctx, st, ins);
      hist(r.createdBy, r.nodeId);
      return;
    }
    case 'copy':
    case 'add': {
      const r = await convertCopy(ctx, st, ins);
      hist(r.createdBy, r.nodeId);
      return;
    }
    case 'from':
      return;
  }
}
