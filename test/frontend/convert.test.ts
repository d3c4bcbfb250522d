import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dockerfileToGraph, type FrontendInput } from '../../src/frontend/index.js';
import type { BuildGraph, ExecOp, FileOp, GraphNode } from '../../src/graph/ops.js';
import type { Platform } from '../../src/image/types.js';
import { KilnError } from '../../src/util/errors.js';
import { fakeImages } from './fake-images.js';
import { sha256 } from '../../src/util/digest.js';

const amd64: Platform = { os: 'linux', architecture: 'amd64' };

async function graphOf(dockerfile: string, opts: Partial<FrontendInput> = {}, images = fakeImages()): Promise<BuildGraph> {
  return dockerfileToGraph({
    dockerfile, dockerfileName: 'Dockerfile', buildArgs: new Map(), platform: amd64, ignorePatterns: ['*.log'],
    resolveImage: images.resolveImage, ...opts,
  });
}

const opOf = <T>(g: BuildGraph, id: string) => g.nodes[id]!.op as T;
/** The chain of node ids from a stage's root back to its base. */
function chain(g: BuildGraph, root: string, base: string): GraphNode[] {
  const out: GraphNode[] = [];
  for (let id = root; id !== base; id = g.nodes[id]!.inputs[0]!) out.unshift(g.nodes[id]!);
  return out;
}

const multiStage = `ARG GO=1.22
FROM golang:\${GO} AS build
WORKDIR /src
COPY go.mod ./
RUN --mount=type=cache,target=/root/.cache go build -o /out/app
FROM alpine AS unused
RUN echo never
FROM build AS test
RUN go test ./...
FROM scratch
COPY --from=build /out/app /app
COPY --from=0 /src/go.mod /
ENTRYPOINT ["/app"]
`;

test('multi-stage: needed stages only, inputs by position, images resolved only when needed', async () => {
  const images = fakeImages();
  const g = await graphOf(multiStage, {}, images);
  assert.deepEqual(g.stages.map((s) => s.index), [0, 3]);
  assert.equal(g.target, 3);
  assert.deepEqual(images.calls, ['golang:1.22 linux/amd64']);
  const [build, final] = g.stages as [BuildGraph['stages'][0], BuildGraph['stages'][0]];
  assert.equal(build.name, 'build');
  const steps = chain(g, build.root, build.base);
  assert.deepEqual(steps.map((n) => n.op.kind), ['file', 'file', 'exec']);
  assert.deepEqual(opOf<FileOp>(g, steps[0]!.id).actions, [{ action: 'mkdir', path: '/src', mode: 0o755 }]);
  const copy = opOf<FileOp>(g, steps[1]!.id);
  assert.equal(steps[1]!.inputs[1], 'context');
  assert.deepEqual(copy.actions[0], { action: 'copy', from: 1, src: ['go.mod'], dest: '/src/', link: false, parents: false, exclude: [], add: false });
  assert.deepEqual(g.nodes['context']!.op, { kind: 'source.context', name: 'context', excludePatterns: ['*.log'] });
  const run = opOf<ExecOp>(g, steps[2]!.id);
  assert.deepEqual(run.args, ['/bin/sh', '-c', 'go build -o /out/app']);
  assert.equal(run.cwd, '/src');
  assert.deepEqual(run.mounts, [{ type: 'cache', target: '/root/.cache', id: '/root/.cache', sharing: 'shared', source: '/', readonly: false, mode: 0o755, uid: 0, gid: 0 }]);
  assert.equal(steps[2]!.name, '[build 4/4] RUN --mount=type=cache,target=/root/.cache go build -o /out/app');
  // final stage: scratch base, two copies reading stage 0's root
  assert.equal(g.nodes[final.base]!.op.kind, 'source.scratch');
  const fsteps = chain(g, final.root, final.base);
  assert.equal(fsteps.length, 2);
  for (const s of fsteps) assert.equal(s.inputs[1], build.root);
  assert.deepEqual(final.config.Entrypoint, ['/app']);
  assert.equal(final.config.Cmd, null);
  assert.deepEqual(final.config.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  assert.deepEqual(final.history.map((h) => [h.createdBy, h.nodeId !== undefined]), [
    ['COPY /out/app /app # buildkit', true], ['COPY /src/go.mod / # buildkit', true], ['ENTRYPOINT ["/app"]', false],
  ]);
  assert.deepEqual(build.history.map((h) => h.createdBy), [
    'WORKDIR /src', 'COPY go.mod ./ # buildkit', 'RUN /bin/sh -c go build -o /out/app # buildkit',
  ]);
  // nothing of the unused stage was converted
  assert.ok(!Object.values(g.nodes).some((n) => n.stage === 1 || n.stage === 2));
});

test('--target by name and index: the graph stops at the target', async () => {
  const images = fakeImages();
  const g = await graphOf(multiStage, { target: 'TEST' }, images);
  assert.deepEqual(g.stages.map((s) => s.index), [0, 2]);
  assert.equal(g.stages[1]!.base, g.stages[0]!.root);
  const g1 = await graphOf(multiStage, { target: '1' }, fakeImages());
  assert.deepEqual(g1.stages.map((s) => s.index), [1]);
  await assert.rejects(graphOf(multiStage, { target: 'nope' }), /target stage "nope" could not be found/);
});

test('errors: duplicate stage, cycle, unknown stage index, blank base', async () => {
  await assert.rejects(graphOf('FROM a AS x\nFROM b AS X\n'), (e: unknown) => e instanceof KilnError && e.message === 'Dockerfile:2:1: duplicate stage name "x"');
  await assert.rejects(graphOf('FROM a AS x\nCOPY --from=y / /\nFROM a AS y\nCOPY --from=x / /\n'), /circular dependency detected on stage: /);
  await assert.rejects(graphOf('FROM a\nCOPY --from=x / /\nFROM a AS x\nCOPY --from=x / /\n'), /Dockerfile:3:1: circular dependency detected on stage: x/);
  await assert.rejects(graphOf('FROM a\nCOPY --from=5 / /\n'), /Dockerfile:2:1: invalid stage index 5/);
  await assert.rejects(graphOf('ARG B\nFROM ${B}\n'), /Dockerfile:2:1: base name \(\$\{B\}\) should not be blank/);
  await assert.rejects(graphOf('FROM a\nRUN echo ${X:?must be set}\nENV Y="${Z:?need Z}"\n'), /Dockerfile:3:1: .*Z: need Z/);
});

test('ARG scoping, build args, ARG and ENV of one name, platform args, proxies', async () => {
  const df = `ARG V=1
ARG TAG=\${TARGETARCH}
FROM base:\${TAG}
RUN echo $V
ARG V
ARG W=\${V}-w
ARG TARGETOS
ENV E=env
ARG E=arg
RUN echo $W $E $TARGETOS
`;
  const images = fakeImages();
  const g = await graphOf(df, { buildArgs: new Map([['V', '2'], ['HTTP_PROXY', 'http://proxy:3128'], ['UNUSED', 'x'], ['BUILDKIT_INLINE_CACHE', '1']]) }, images);
  assert.deepEqual(images.calls, ['base:amd64 linux/amd64']);
  const s = g.stages[0]!;
  const [r1, , , , , , r2] = s.history;
  const execs = chain(g, s.root, s.base).map((n) => n.op as ExecOp);
  // pre-FROM args are not visible before redeclaration
  assert.equal(r1!.createdBy, 'RUN /bin/sh -c echo $V # buildkit');
  // a proxy build arg reaches every RUN in both cases, outside the key
  const proxyVars = ['HTTP_PROXY=http://proxy:3128', 'http_proxy=http://proxy:3128'];
  assert.deepEqual(execs[0]!.env, ['PATH=/usr/local/bin:/usr/bin:/bin', 'BASE=1', ...proxyVars]);
  assert.deepEqual(execs[0]!.proxyEnv, ['HTTP_PROXY', 'http_proxy']);
  // an ARG set after an ENV of the same name wins for RUN, as in BuildKit; the image keeps the ENV
  assert.deepEqual(execs[1]!.env, ['PATH=/usr/local/bin:/usr/bin:/bin', 'BASE=1', 'V=2', 'W=2-w', 'TARGETOS=linux', 'E=arg', ...proxyVars]);
  assert.equal(r2!.createdBy, 'RUN |4 V=2 W=2-w TARGETOS=linux E=arg /bin/sh -c echo $W $E $TARGETOS # buildkit');
  assert.deepEqual(s.history.slice(1, 5).map((h) => h.createdBy), ['ARG V=2', 'ARG W=2-w', 'ARG TARGETOS=linux', 'ENV E=env']);
  assert.deepEqual(s.config.Env, ['PATH=/usr/local/bin:/usr/bin:/bin', 'BASE=1', 'E=env']);
  assert.ok(g.warnings.some((w) => w.message.includes('UNUSED')));
  assert.ok(!g.warnings.some((w) => w.message.includes('HTTP_PROXY')));
  // BUILDKIT_* build args are options to the builder, never ARGs: BuildKit does not warn of them.
  assert.ok(!g.warnings.some((w) => w.message.includes('BUILDKIT_INLINE_CACHE')));
});

test('a stage built FROM another carries on its ARGs; a declared proxy ARG is the stage\'s own, in the key and the history', async () => {
  const df = `FROM base AS a
ENV A=1
ARG A=2
ARG V=1
ARG HTTP_PROXY
RUN one
FROM a
RUN two
ARG V
RUN three
`;
  const g = await graphOf(df, { buildArgs: new Map([['HTTP_PROXY', 'http://p:1'], ['https_proxy', 'http://s:2'], ['HTTPS_PROXY', 'http://S:3']]) });
  const [a, b] = g.stages;
  const run = (id: string) => opOf<ExecOp>(g, id);
  // the declared proxy ARG is a variable of the stage; the other proxies stay outside the key
  assert.deepEqual(run(a!.root).env, ['PATH=/usr/local/bin:/usr/bin:/bin', 'BASE=1', 'A=2', 'V=1', 'HTTP_PROXY=http://p:1', 'http_proxy=http://p:1', 'HTTPS_PROXY=http://s:2', 'https_proxy=http://s:2']);
  assert.deepEqual(run(a!.root).proxyEnv, ['http_proxy', 'HTTPS_PROXY', 'https_proxy']);
  assert.equal(a!.history.at(-1)!.createdBy, 'RUN |3 A=2 V=1 HTTP_PROXY=http://p:1 /bin/sh -c one # buildkit');
  // the image config's ENV is set again over the base stage's variables: A is 1 again
  const [two, three] = chain(g, b!.root, b!.base).map((n) => n.op as ExecOp);
  assert.deepEqual(two!.env.slice(0, 5), ['V=1', 'HTTP_PROXY=http://p:1', 'PATH=/usr/local/bin:/usr/bin:/bin', 'BASE=1', 'A=1']);
  assert.equal(b!.history.at(-3)!.createdBy, 'RUN |3 A=1 V=1 HTTP_PROXY=http://p:1 /bin/sh -c two # buildkit');
  assert.equal(b!.history.at(-1)!.createdBy, 'RUN |3 A=1 V=1 HTTP_PROXY=http://p:1 /bin/sh -c three # buildkit');
  assert.deepEqual(three!.env, two!.env);
  assert.deepEqual(b!.config.Env, ['PATH=/usr/local/bin:/usr/bin:/bin', 'BASE=1', 'A=1']);
});

test('TARGETSTAGE names the stage being built: --target, else the last stage', async () => {
  const df = 'FROM base AS One\nARG TARGETSTAGE\nRUN a\nFROM base AS Two\nARG TARGETSTAGE TARGETOSVERSION\nRUN b\n';
  const last = await graphOf(df);
  assert.equal(last.stages.at(-1)!.history.at(-1)!.createdBy, 'RUN |2 TARGETSTAGE=two TARGETOSVERSION= /bin/sh -c b # buildkit');
  const first = await graphOf(df, { target: 'One' });
  assert.equal(first.stages.at(-1)!.history.at(-1)!.createdBy, 'RUN |1 TARGETSTAGE=One /bin/sh -c a # buildkit');
});

test('image config and history of config instructions', async () => {
  const df = `FROM base
ENV A=1 B=$A
LABEL "x y"=z version=$A
EXPOSE 80 53/udp 8000-8001
USER app
WORKDIR rel
WORKDIR ../abs
VOLUME /data /cache
STOPSIGNAL SIGINT
SHELL ["/bin/bash", "-c"]
CMD run it
ENTRYPOINT ["/e"]
HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD curl -f http://x/
ONBUILD RUN echo child
MAINTAINER someone
`;
  const g = await graphOf(df, {}, fakeImages({ base: { WorkingDir: '/w', Cmd: ['old'], OnBuild: null } }));
  const s = g.stages[0]!;
  const c = s.config;
  assert.deepEqual(c.Env, ['PATH=/usr/local/bin:/usr/bin:/bin', 'BASE=1', 'A=1', 'B=']);
  assert.deepEqual(c.Labels, { 'x y': 'z', version: '1' });
  assert.deepEqual(Object.keys(c.ExposedPorts!).sort(), ['53/udp', '80/tcp', '8000/tcp', '8001/tcp']);
  assert.equal(c.User, 'app');
  assert.equal(c.WorkingDir, '/w/abs');
  assert.deepEqual(Object.keys(c.Volumes!), ['/data', '/cache']);
  assert.equal(c.StopSignal, 'SIGINT');
  assert.deepEqual(c.Shell, ['/bin/bash', '-c']);
  assert.deepEqual(c.Cmd, ['/bin/bash', '-c', 'run it']);
  assert.deepEqual(c.Entrypoint, ['/e']);
  assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'curl -f http://x/'], Interval: 30e9, Timeout: 90e9, Retries: 3 });
  assert.deepEqual(c.OnBuild, ['RUN echo child']);
  assert.equal(s.author, 'someone');
  assert.deepEqual(s.history.map((h) => h.createdBy), [
    'ENV A=1 B=',
    'LABEL x y=z version=1',
    'EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{}]',
    'USER app',
    'WORKDIR /w/rel',
    'WORKDIR /w/abs',
    'VOLUME [/data /cache]',
    'STOPSIGNAL SIGINT',
    'SHELL [/bin/bash -c]',
    'CMD ["/bin/bash" "-c" "run it"]',
    'ENTRYPOINT ["/e"]',
    'HEALTHCHECK &{["CMD-SHELL" "curl -f http://x/"] "30s" "1m30s" "0s" "0s" \'\\x03\'}',
    'MAINTAINER someone',
  ]);
  const mk = chain(g, s.root, s.base).map((n) => n.op as FileOp);
  assert.deepEqual(mk.map((o) => o.actions[0]), [
    { action: 'mkdir', path: '/w/rel', mode: 0o755, chown: { user: 'app' } },
    { action: 'mkdir', path: '/w/abs', mode: 0o755, chown: { user: 'app' } },
  ]);
});

test('ENTRYPOINT keeps a CMD set in the same stage; inherited CMD is reset', async () => {
  const g = await graphOf('FROM base\nCMD ["c"]\nENTRYPOINT ["e"]\n', {}, fakeImages({ base: { Cmd: ['old'] } }));
  assert.deepEqual(g.stages[0]!.config.Cmd, ['c']);
  // A bare CMD or ENTRYPOINT is the shell form of nothing, as BuildKit makes it.
  const bare = await graphOf('FROM base\nCMD\nENTRYPOINT\n');
  assert.deepEqual([bare.stages[0]!.config.Cmd, bare.stages[0]!.config.Entrypoint], [['/bin/sh', '-c', ''], ['/bin/sh', '-c', '']]);
});

test('ONBUILD triggers of the base run right after FROM', async () => {
  const g = await graphOf('FROM parent\nRUN echo own\n', {}, fakeImages({ parent: { OnBuild: ['RUN echo trigger', 'ENV T=1'] } }));
  const s = g.stages[0]!;
  assert.deepEqual(s.history.map((h) => h.createdBy), ['RUN /bin/sh -c echo trigger # buildkit', 'ENV T=1', 'RUN /bin/sh -c echo own # buildkit']);
  assert.equal(s.config.OnBuild, undefined);
});

test('RUN cache mount ids: BuildKit\'s default is the target as written; BUILDKIT_CACHE_MOUNT_NS puts them in a namespace', async () => {
  const df = 'FROM base\nWORKDIR /w\nRUN --mount=type=cache,target=./cache/ --mount=type=cache,target=/abs --mount=type=cache,target=/x,id=named true\n';
  const idsOf = (g: BuildGraph) => {
    const s = g.stages[0]!;
    return (opOf<ExecOp>(g, s.root).mounts as Array<{ target: string; id?: string }>).map((m) => [m.target, m.id]);
  };
  assert.deepEqual(idsOf(await graphOf(df)), [['/w/cache', 'cache'], ['/abs', '/abs'], ['/x', 'named']]);
  const namespaced = await graphOf(df, { buildArgs: new Map([['BUILDKIT_CACHE_MOUNT_NS', 'team-a']]) });
  assert.deepEqual(idsOf(namespaced), [['/w/cache', 'team-a/cache'], ['/abs', 'team-a//abs'], ['/x', 'team-a/named']]);
  assert.ok(!namespaced.warnings.some((w) => w.message.includes('BUILDKIT_CACHE_MOUNT_NS')), 'a builder option, not an unused build arg');
});

test('RUN heredocs, exec form, mounts defaults, network and security', async () => {
  const df = `FROM base
RUN <<EOF
echo one
EOF
RUN <<-EOF
\t#!/usr/bin/env python3
\tprint("hi")
\tEOF
RUN <<A cat - /dev/fd/3 3<<B
a
A
b
B
RUN ["echo", "exec form"]
RUN --mount=type=secret,id=tok --mount=type=secret,target=/k/key,env=K --mount=type=ssh --mount=type=bind,target=src,from=base,rw --mount=type=tmpfs,target=/t,size=1m --network=none --security=insecure true
`;
  const g = await graphOf(df);
  const s = g.stages[0]!;
  const runs = chain(g, s.root, s.base);
  const ops = runs.map((n) => n.op as ExecOp);
  assert.deepEqual(ops[0]!.args, ['/bin/sh', '-c', 'echo one\n']);
  assert.deepEqual(ops[1]!.args, ['/bin/sh', '-c', '/dev/pipes/EOF']);
  assert.deepEqual(ops[1]!.files, [{ path: '/dev/pipes/EOF', content: '#!/usr/bin/env python3\nprint("hi")\n', mode: 0o755 }]);
  assert.deepEqual(ops[2]!.args, ['/bin/sh', '-c', '<<A cat - /dev/fd/3 3<<B\na\nA\nb\nB']);
  assert.deepEqual(ops[3]!.args, ['echo', 'exec form']);
  assert.equal(s.history[3]!.createdBy, 'RUN echo exec form # buildkit');
  const m = ops[4]!;
  assert.equal(m.network, 'none');
  assert.equal(m.security, 'insecure');
  assert.deepEqual(m.mounts, [
    { type: 'secret', id: 'tok', target: '/run/secrets/tok', required: false, mode: 0o400, uid: 0, gid: 0 },
    { type: 'secret', id: 'key', target: '/k/key', env: 'K', required: false, mode: 0o400, uid: 0, gid: 0 },
    { type: 'ssh', id: 'default', target: '/run/buildkit/ssh_agent.0', required: false, mode: 0o600, uid: 0, gid: 0 },
    { type: 'bind', target: '/src', from: 1, source: '/', readwrite: true },
    { type: 'tmpfs', target: '/t', size: 1048576 },
  ]);
  assert.equal(g.nodes[runs[4]!.inputs[1]!]!.op.kind, 'source.image');
});

test('COPY/ADD: heredoc files, URLs, flags, history', async () => {
  const df = `FROM base
ENV NAME=world
WORKDIR /app
COPY <<EOF greeting.txt
hello $NAME "q"
EOF
COPY --chown=app:staff --chmod=0640 --link --exclude=*.md --parents a b/ ./
ADD --checksum=sha256:${'a'.repeat(64)} https://example.com/f.tgz /opt/
COPY <<A <<B /etc/
1
A
2
B
`;
  const g = await graphOf(df);
  const s = g.stages[0]!;
  const ops = chain(g, s.root, s.base).map((n) => n.op as FileOp);
  assert.deepEqual(ops[1]!.actions, [{ action: 'mkfile', path: '/app/greeting.txt', content: 'hello world "q"\n', mode: 0o644 }]);
  assert.deepEqual(ops[2]!.actions, [{
    action: 'copy', from: 1, src: ['a', 'b/'], dest: '/app/', chown: { user: 'app', group: 'staff' }, chmod: '0640',
    link: true, parents: true, exclude: ['*.md'], add: false,
  }]);
  assert.deepEqual(ops[3]!.actions, [{ action: 'download', url: 'https://example.com/f.tgz', dest: '/opt/', checksum: `sha256:${'a'.repeat(64)}` }]);
  assert.deepEqual(ops[4]!.actions.map((a) => a.action === 'mkfile' && [a.path, a.content]), [['/etc/A', '1\n'], ['/etc/B', '2\n']]);
  assert.deepEqual(s.history.map((h) => h.createdBy), [
    'ENV NAME=world', 'WORKDIR /app', 'COPY <<EOF greeting.txt # buildkit',
    'COPY --parents --chown=app:staff --chmod=0640 a b/ ./ # buildkit',
    `ADD https://example.com/f.tgz /opt/ # buildkit`, 'COPY <<A <<B /etc/ # buildkit',
  ]);
  // Several sources need no trailing slash (BuildKit's rule, not the legacy builder's).
  const several = await graphOf('FROM a\nCOPY x y z\n');
  assert.deepEqual(opOf<FileOp>(several, several.stages[0]!.root).actions.map((a) => a.action === 'copy' && [a.src, a.dest]), [[['x', 'y'], '/z']]);
  await assert.rejects(graphOf('FROM a\nCOPY http://x/y /z\n'), /source can't be a URL for COPY/);
  // A git reference is a git action (the commit is resolved when the step is keyed); an https URL
  // without .git is a download, and COPY takes neither.
  const git = await graphOf('FROM a\nADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.13:docs /src\nADD git@github.com:x/y.git /y/\n');
  assert.deepEqual(git.nodes[git.stages[0]!.root]!.op, { kind: 'file', actions: [{ action: 'git', remote: 'git@github.com:x/y.git', dest: '/y/', keepGitDir: false }] });
  assert.deepEqual(opOf<FileOp>(git, git.nodes[git.stages[0]!.root]!.inputs[0]!).actions, [
    { action: 'git', remote: 'https://github.com/moby/buildkit.git', ref: 'v0.13', subdir: 'docs', dest: '/src', keepGitDir: true },
  ]);
  assert.equal(git.stages[0]!.history.at(-2)!.createdBy, 'ADD https://github.com/moby/buildkit.git#v0.13:docs /src # buildkit');
  assert.equal(opOf<FileOp>(await graphOf('FROM a\nADD https://github.com/moby/buildkit#v0.13 /src\n'), 's0.2').actions[0]!.action, 'download');
  // The URL query form (BuildKit 0.24): branch, tag, ref, subdir, checksum (alias commit).
  const query = async (q: string) => opOf<FileOp>(await graphOf(`FROM a\nADD https://h/r.git?${q} /src/\n`), 's0.2').actions[0];
  assert.deepEqual(await query('tag=v1&subdir=docs&commit=abc123'), { action: 'git', remote: 'https://h/r.git', ref: 'refs/tags/v1', subdir: 'docs', dest: '/src/', keepGitDir: false, checksum: 'abc123' });
  assert.deepEqual(await query('branch=main'), { action: 'git', remote: 'https://h/r.git', ref: 'refs/heads/main', dest: '/src/', keepGitDir: false });
  for (const [q, message] of [
    ['depth=1', /https:\/\/h\/r\.git\?depth=1: unknown git query key depth/],
    ['tag=a&branch=b', /names one of ref, branch and tag, got branch and tag/],
    ['ref=main#other', /a #fragment or a \?query, not both/],
    ['commit=zz', /invalid git checksum "zz"/],
  ] as const) {
    await assert.rejects(graphOf(`FROM a\nADD https://h/r.git?${q} /src/\n`), message);
  }
  await assert.rejects(graphOf('FROM a\nADD --checksum=abcd https://h/r.git?checksum=ef01 /src/\n'), /--checksum=abcd and the URL's checksum=ef01 differ/);
  await assert.rejects(graphOf('FROM a\nCOPY git://h/r.git /src\n'), /Dockerfile:2:1: source can't be a git ref for COPY/);
  await assert.rejects(graphOf('FROM a\nADD --checksum=abc1234 a.txt git://h/r.git /src/\n'), /checksum can't be specified for multiple sources/);
});

test('FROM --platform and platform-specific image resolution', async () => {
  const images = fakeImages();
  const g = await graphOf('FROM --platform=$BUILDPLATFORM golang AS b\nFROM --platform=linux/arm64 alpine\nCOPY --from=b / /\n', { platform: { os: 'linux', architecture: 'arm64' } }, images);
  assert.deepEqual(images.calls.sort(), ['alpine linux/arm64', 'golang linux/amd64']);
  assert.deepEqual(g.stages.map((s) => s.platform.architecture), ['amd64', 'arm64']);
  const chained = await graphOf('FROM --platform=linux/arm64 alpine AS a\nFROM a\n', {}, fakeImages());
  assert.deepEqual(chained.stages.map((s) => s.platform.architecture), ['arm64', 'arm64']);
  const fromImage = fakeImages();
  await graphOf('FROM --platform=linux/arm64 scratch\nCOPY --from=busybox /bin/sh /sh\n', {}, fromImage);
  assert.deepEqual(fromImage.calls, ['busybox linux/arm64']);
  // An image of one platform (no index to choose from): the stage is what the image is, as in
  // BuildKit, with its InvalidBaseImagePlatform warning; an arm64/v8 spelling is arm64.
  const onlyAmd64: FrontendInput['resolveImage'] = async (ref) => ({
    ref, digest: sha256(ref), config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} },
  });
  const single = await graphOf('FROM --platform=linux/arm64/v8 one AS a\nFROM --platform=linux/amd64 one\n', { target: 'a' }, { calls: [], resolveImage: onlyAmd64 });
  assert.deepEqual(single.stages.map((s) => s.platform), [{ os: 'linux', architecture: 'amd64' }]);
  assert.deepEqual(single.warnings.filter((w) => w.rule === 'InvalidBaseImagePlatform').map((w) => w.message), [
    'InvalidBaseImagePlatform: Base image one was pulled with platform "linux/amd64", expected "linux/arm64" for current build',
  ]);
});

test('lint rules and the check directive', async () => {
  const df = 'FROM base AS Build\nENV A 1\nWORKDIR app\nCMD run\nFROM base as x\n';
  const g = await graphOf(df, { target: 'build' });
  assert.deepEqual(g.warnings.map((w) => `${w.location?.line} ${w.message}`), [
    "1 StageNameCasing: Stage name 'Build' should be lowercase",
    "5 FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
    '2 LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy "ENV key value" format',
    '3 WorkdirRelativePath: Relative workdir "app" can have unexpected results if the base image changes',
    '4 JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals',
  ]);
  const skipped = await graphOf('# check=skip=StageNameCasing,FromAsCasing,JSONArgsRecommended\n' + df, { target: 'build' });
  assert.deepEqual(skipped.warnings.map((w) => w.rule), ['LegacyKeyValueFormat', 'WorkdirRelativePath']);
  assert.deepEqual((await graphOf('# check=skip=all\n' + df, { target: 'build' })).warnings, []);
  await assert.rejects(graphOf('# check=error=true\n' + df, { target: 'build' }), /Dockerfile:2:1: lint violations \(# check=error=true\)/);
});
