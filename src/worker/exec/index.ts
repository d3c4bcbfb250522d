// RUN: the step runs in the sandbox over an overlay of its input layers; what it changed
// (the upperdir) becomes its snapshot by rename.

import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_HOSTNAME, type ExecOp } from '../../graph/ops.js';
import type { ResolvedInput, StepOutput, WorkerContext } from '../types.js';
import { KilnError } from '../../util/errors.js';
import { mountsUnder } from '../../store/mounts.js';
import { SandboxSpec } from '../sandbox/spec.js';
import { startSandbox } from '../sandbox/helper.js';
import { createStepCgroup, type StepCgroup } from '../sandbox/cgroups.js';
import { ensureSkeleton, privateMountPoint } from '../sandbox/skeleton.js';
import { resolveUserCached } from './user.js';
import { prepareMounts } from './mounts.js';
import { overlayMountSpec } from './overlay.js';
import { OutputTail } from './output-tail.js';
import { describeFailure } from './failure.js';

export { sweepStaleSandboxes } from '../sandbox/sweep.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** How often a step under --pids-limit is checked for refused forks (a fork bomb never ends by itself). */
const PIDS_POLL_MS = 100;

function hasVar(env: string[], name: string): boolean {
  return env.some((e) => e.startsWith(`${name}=`));
}

function hostResolvConf(): Buffer {
  try {
    return readFileSync('/etc/resolv.conf');
  } catch {
    return Buffer.alloc(0);
  }
}

/**
 * The step's scratch folder goes with synchronous calls (they beat thread-pool round trips on a
 * folder this small). Every mount of the step lived in its own namespace; should one ever
 * show up here, the folder is left alone rather than deleted through it.
 */
function removeStepDir(dir: string): void {
  try {
    // Usually all that is left: the helper removed its scaffolding, the upperdir was renamed.
    rmdirSync(dir);
    return;
  } catch {
    // something else is still in there
  }
  const stuck = mountsUnder(dir);
  if (stuck.length > 0) throw new Error(`cannot remove ${dir}: still mounted at ${stuck.join(', ')}`);
  rmSync(dir, { recursive: true, force: true });
}

export async function runExec(op: ExecOp, inputs: ResolvedInput[], ctx: WorkerContext, snapshotId: string): Promise<StepOutput> {
  if (op.security === 'insecure' && !ctx.allowInsecure) {
    throw new KilnError('RUN --security=insecure is refused without --allow security.insecure');
  }
  if (op.args.length === 0) throw new KilnError('RUN has no command');
  const root = inputs[0];
  if (root && root.kind !== 'state') throw new KilnError('RUN needs a filesystem as its first input');
  const layers = root?.layers ?? [];
  const user = await resolveUserCached(op.user, layers.map((id) => ctx.store.snapshotFs(id)));
  if (ctx.signal.aborted) throw new KilnError('aborted');

  const stepDir = ctx.store.tempDirSync('exec');
  let cgroup: StepCgroup | null = null;
  let releaseMounts = () => {};
  try {
    const upper = join(stepDir, 'upper');
    const work = join(stepDir, 'work');
    for (const d of [upper, work]) mkdirSync(d);
    const privateDir = privateMountPoint(ctx.store);

    const skeleton = await ensureSkeleton(ctx.store);
    const lowers = [...layers.map((id) => ctx.store.snapshotFs(id)).reverse(), skeleton];
    const linkDir = join(stepDir, 'lower-links');
    const ovl = await overlayMountSpec(lowers, upper, work, linkDir);
    const mounts = await prepareMounts(op, inputs, ctx, { dir: stepDir });
    releaseMounts = mounts.release;

    const hostname = op.hostname ?? DEFAULT_HOSTNAME;
    const env = [...op.env, ...mounts.env];
    if (!hasVar(env, 'PATH')) env.unshift(`PATH=${DEFAULT_PATH}`);
    if (!hasVar(env, 'HOME')) env.push(`HOME=${user.home}`);

    const spec = new SandboxSpec()
      .add('private', privateDir)
      .add('overlay', ovl.cwd, ovl.data)
      .add('cwd', op.cwd || '/')
      .add('hostname', hostname)
      .add('user', String(user.uid), String(user.gid), ...user.groups.map(String));
    for (const a of op.args) spec.add('arg', a);
    for (const e of env) spec.add('env', e);
    if (op.network === 'none') spec.add('net-none');
    if (op.security === 'insecure') spec.add('insecure');
    if (ctx.limits.shmBytes !== undefined) spec.add('shm-size', String(ctx.limits.shmBytes));
    for (const u of ctx.limits.ulimits ?? []) spec.add('rlimit', u.name, String(u.soft), String(u.hard));
    // Generated per step and bound over the image's files: never part of the layer. Read-only,
    // as BuildKit binds them: a step that writes them fails there too. /etc/hostname is the
    // image's own, as in BuildKit (the name is the UTS namespace's): a step may write or delete it.
    const extraHosts = (op.extraHosts ?? []).map((h) => `${h.ip}\t${h.host}\n`).join('');
    spec.add('file', '/etc/hosts', '644', '0', '0', 'ro',
      Buffer.from(`127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n${extraHosts}`));
    spec.add('file', '/etc/resolv.conf', '644', '0', '0', 'ro', hostResolvConf());
    for (const r of mounts.records) spec.add(...r);
    // For the helper's cleanup after the step (mount stubs out of the upperdir, scaffolding gone).
    spec.add('upper', upper);
    spec.add('workdir', work);
    for (const l of lowers) spec.add('lower', l);
    for (const d of [work, linkDir]) spec.add('scrap', d);

    cgroup = createStepCgroup(ctx.limits);
    for (const dir of cgroup?.dirs ?? []) spec.add('cgroup', dir);

    const tail = new OutputTail(20);
    const run = startSandbox(spec.encode(), (chunk, stream) => {
      tail.push(chunk);
      ctx.onOutput(chunk, stream);
    });
    let aborted = false;
    let pidsKilled = false;
    const onAbort = () => {
      aborted = true;
      run.stop();
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    if (ctx.signal.aborted) onAbort();
    const cg = cgroup;
    const poll = cg && ctx.limits.pids !== undefined
      ? setInterval(() => {
          if (cg.events().pidsRefused > 0) {
            pidsKilled = true;
            run.stop();
          }
        }, PIDS_POLL_MS)
      : undefined;
    let status;
    try {
      status = await run.done;
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      if (poll) clearInterval(poll);
    }
    const events = cgroup?.events() ?? { oomKills: 0, pidsRefused: 0 };
    releaseMounts();

    if (aborted) throw new KilnError('RUN aborted', { cause: ctx.signal.reason });
    if (status.setupError !== undefined) throw new KilnError(`sandbox: ${status.setupError}`);
    if (status.exitCode !== 0 || pidsKilled) {
      throw new KilnError(describeFailure(op.args, status, {
        oomKilled: events.oomKills > 0,
        pidsKilled: pidsKilled || (events.pidsRefused > 0 && status.exitCode !== 0),
        limits: ctx.limits,
        tail: tail.lines(),
      }));
    }

    if (readdirSync(upper).length === 0) {
      rmdirSync(upper);
      return { snapshot: null };
    }
    await ctx.store.commitSnapshot(snapshotId, upper, { source: 'exec', empty: false });
    return { snapshot: snapshotId };
  } finally {
    releaseMounts();
    if (cgroup) await cgroup.remove();
    removeStepDir(stepDir);
  }
}
