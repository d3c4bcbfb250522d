// BuildKit's build checks, case by case from BuildKit's own lint tests
// (frontend/dockerfile/dockerfile_lint_test.go): the exact message, the line it points at, and
// a Dockerfile that must stay quiet.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dockerfileToGraph, type FrontendInput } from '../../src/frontend/index.js';
import type { BuildGraph } from '../../src/graph/ops.js';
import type { Platform } from '../../src/image/types.js';
import { fakeImages } from './fake-images.js';

const amd64: Platform = { os: 'linux', architecture: 'amd64' };

// Every image has a PATH, as alpine and busybox do; nothing is pulled.
const { resolveImage } = fakeImages({}, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);

async function graphOf(dockerfile: string, opts: Partial<FrontendInput> = {}): Promise<BuildGraph> {
  return dockerfileToGraph({
    dockerfile, dockerfileName: 'Dockerfile', buildArgs: new Map(), platform: amd64, ignorePatterns: [], resolveImage, ...opts,
  });
}

/** `LINE MESSAGE` of one rule's warnings, sorted by line then message as BuildKit's tests sort them. */
async function warningsOf(rule: string, dockerfile: string, opts: Partial<FrontendInput> = {}): Promise<string[]> {
  const g = await graphOf(dockerfile, opts);
  return g.warnings
    .filter((w) => w.rule === rule)
    .map((w) => ({ line: w.location?.line ?? 0, message: w.message }))
    .sort((a, b) => a.line - b.line || (a.message < b.message ? -1 : a.message > b.message ? 1 : 0))
    .map((w) => `${w.line} ${w.message}`);
}

const buildArgs = (args: Record<string, string>) => ({ buildArgs: new Map(Object.entries(args)) });

test('ConsistentInstructionCasing: the majority of keywords sets the case, a tie is upper case', async () => {
  const rule = 'ConsistentInstructionCasing';
  const msg = (kw: string, casing: string) => `${rule}: Command '${kw}' should match the case of the command majority (${casing})`;
  assert.deepEqual(await warningsOf(rule, '\n#\n#\nFrom scratch as base\nFROM scratch AS base2\n'), [`4 ${msg('From', 'uppercase')}`]);
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch\n#\ncopy Dockerfile /foo\nCOPY Dockerfile /bar\n'), [`4 ${msg('copy', 'uppercase')}`]);
  assert.deepEqual(await warningsOf(rule, '\n#\n#\nfrOM scratch as base\nfrom scratch as base2\n'), [`4 ${msg('frOM', 'lowercase')}`]);
  assert.deepEqual(await warningsOf(rule, '\nfrom scratch\n#\nCOPY Dockerfile /foo\ncopy Dockerfile /bar\n'), [`4 ${msg('COPY', 'lowercase')}`]);
  assert.deepEqual(await warningsOf(rule, '\n#\n#\nfrom scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\nCOPY Dockerfile /baz\n'), [`4 ${msg('from', 'uppercase')}`]);
  assert.deepEqual(await warningsOf(rule, '\n#\n#\nFROM scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\ncopy Dockerfile /baz\n'), [`4 ${msg('FROM', 'lowercase')}`]);
  // ARGs before the first FROM do not vote.
  assert.deepEqual(await warningsOf(rule, 'arg A=1\narg B=2\nFROM scratch\nCOPY a /\n'), []);
  assert.deepEqual(await warningsOf(rule, '\nfrom scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\n'), []);
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\n'), []);
  assert.deepEqual(await warningsOf(rule, '\nFROM alpine\nRUN <<\'EOT\'\nenv\nEOT\n'), []);
});

test('ReservedStageName: a stage named scratch or context', async () => {
  const rule = 'ReservedStageName';
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch AS scratch\nFROM scratch AS context\n'), [
    `2 ${rule}: Stage name should not use the same name as reserved stage "scratch"`,
    `3 ${rule}: Stage name should not use the same name as reserved stage "context"`,
  ]);
  // Compared lower-cased, as BuildKit keeps stage names.
  assert.deepEqual(await warningsOf(rule, 'FROM alpine AS Context\n'), [`1 ${rule}: Stage name should not use the same name as reserved stage "context"`]);
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch\nFROM scratch AS a\n'), []);
});

test("a stage's FROM sees only the stages above it, so FROM x AS x names the image x", async () => {
  const g = await graphOf('FROM alpine AS alpine\nRUN true\nFROM alpine\n');
  assert.deepEqual(g.stages.map((s) => s.index), [0, 1]);
  assert.match(g.stages[0]!.base, /^image:docker\.io\/library\/alpine:latest@/);
  assert.equal(g.stages[1]!.base, g.stages[0]!.root);
  const later = await graphOf('FROM later\nFROM alpine AS later\n', { target: '0' });
  assert.match(later.stages[0]!.base, /^image:docker\.io\/library\/later:latest@/);
});

test('MaintainerDeprecated: every MAINTAINER, in any stage', async () => {
  const rule = 'MaintainerDeprecated';
  const msg = `${rule}: Maintainer instruction is deprecated in favor of using label`;
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch\nMAINTAINER me@example.org\n'), [`3 ${msg}`]);
  assert.deepEqual(await warningsOf(rule, 'FROM alpine AS unused\nMAINTAINER me@example.org\nFROM scratch\n'), [`2 ${msg}`]);
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch\nLABEL org.opencontainers.image.authors="me@example.org"\n'), []);
});

test('UndefinedArgInFrom: names a FROM line uses that no global ARG or predefined arg declares', async () => {
  const rule = 'UndefinedArgInFrom';
  for (const quiet of [
    '\nARG base=scratch\nFROM $base\nCOPY Dockerfile .\n',
    '\nARG BUILDPLATFORM=linux/amd64\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n',
    '\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n',
    '\nARG DEBUG\nFROM scratch${DEBUG}\nCOPY Dockerfile .\n',
    '\nARG DEBUG\nFROM scra${DEBUG:-tch}\nCOPY Dockerfile .\n',
    '\nARG DEBUG=""\nFROM scratch${DEBUG-@bogus}\nCOPY Dockerfile .\n',
  ]) {
    assert.deepEqual(await warningsOf(rule, quiet), [], quiet);
  }
  // Checked in every stage: these platforms are empty or broken, so the stages are left out of the build.
  assert.deepEqual(await warningsOf(rule, '\nFROM --platform=$BULIDPLATFORM scratch AS unused\nFROM scratch\n'), [
    `2 ${rule}: FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)`,
  ]);
  assert.deepEqual(await warningsOf(rule, '\nARG MY_OS=linux\nARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} busybox AS unused\nFROM scratch\n'), [
    `4 ${rule}: FROM argument 'MYARCH' is not declared (did you mean MY_ARCH?)`,
  ]);
  assert.deepEqual(await warningsOf(rule, '\nARG tag=latest\nFROM busybox:${tag}${version} AS b\nCOPY Dockerfile .\n'), [
    `3 ${rule}: FROM argument 'version' is not declared`,
  ]);
});

test('UndefinedVar: a word of a stage using a variable the stage never defined', async () => {
  const rule = 'UndefinedVar';
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n'), []);
  assert.deepEqual(await warningsOf(rule, '\nFROM alpine\nRUN echo $PATH\n'), []);
  assert.deepEqual(await warningsOf(rule, '\nFROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n'), [
    `3 ${rule}: Usage of undefined variable '$foo'`,
  ]);
  assert.deepEqual(await warningsOf(rule, '\nFROM alpine\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nARG DIR_CONFIG=config/\nCOPY $DIR_ASSET .\n'), [
    `6 ${rule}: Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)`,
  ]);
  assert.deepEqual(await warningsOf(rule, '\nFROM alpine\nENV PATH=$PAHT:/tmp/bin\n'), [
    `3 ${rule}: Usage of undefined variable '$PAHT' (did you mean $PATH?)`,
  ]);
  // Only the stages the build needs: `first` is not built.
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch AS first\nCOPY $foo .\n\nFROM scratch AS second\nCOPY $bar .\n'), [
    `6 ${rule}: Usage of undefined variable '$bar'`,
  ]);
  // Predefined args are declared for FROM lines only; a stage has to ask for them.
  assert.deepEqual(await warningsOf(rule, 'FROM alpine\nWORKDIR /$TARGETARCH\nARG TARGETARCH\nUSER $TARGETARCH\n'), [
    `2 ${rule}: Usage of undefined variable '$TARGETARCH'`,
  ]);
  // An ENV's words see the variables as they were before it.
  assert.deepEqual(await warningsOf(rule, 'FROM alpine\nENV A=1 B=$A\n'), [`2 ${rule}: Usage of undefined variable '$A'`]);
  // A stage built FROM another has that stage's ARGs, declared with a value or not.
  assert.deepEqual(await warningsOf(rule, 'FROM alpine AS base\nARG V=1\nARG W\nFROM base\nENV X=$V$W$Y\n'), [
    `5 ${rule}: Usage of undefined variable '$Y' (did you mean $V?)`,
  ]);
  // RUN mounts and expanded heredocs are checked; EXPOSE is not, nor RUN's own command line.
  assert.deepEqual(await warningsOf(rule, 'FROM alpine\nRUN --mount=type=cache,target=/$CACHE echo $X\nEXPOSE $PORT\nCOPY <<EOF /f\n$BODY\nEOF\n'), [
    `2 ${rule}: Usage of undefined variable '$CACHE'`,
    `4 ${rule}: Usage of undefined variable '$BODY'`,
  ]);
});

test('MultipleInstructionsDisallowed: the overridden CMD, ENTRYPOINT or HEALTHCHECK of a stage', async () => {
  const rule = 'MultipleInstructionsDisallowed';
  const msg = (kw: string) => `${rule}: Multiple ${kw} instructions should not be used in the same stage because only the last one will be used`;
  assert.deepEqual(await warningsOf(rule, `
FROM scratch
ENTRYPOINT ["/myapp"]
ENTRYPOINT ["/myotherapp"]
CMD ["/myapp"]
CMD ["/myotherapp"]
HEALTHCHECK CMD ["/myapp"]
HEALTHCHECK CMD ["/myotherapp"]
`), [`3 ${msg('ENTRYPOINT')}`, `5 ${msg('CMD')}`, `7 ${msg('HEALTHCHECK')}`]);
  assert.deepEqual(await warningsOf(rule, `
FROM scratch
ENTRYPOINT ["/myapp"]
CMD ["/myapp"]
HEALTHCHECK CMD ["/myapp"]
COPY <<EOF /a.txt
Hello, World!
EOF
ENTRYPOINT ["/myotherapp"]
CMD ["/myotherapp"]
HEALTHCHECK CMD ["/myotherapp"]
`), [`3 ${msg('ENTRYPOINT')}`, `4 ${msg('CMD')}`, `5 ${msg('HEALTHCHECK')}`]);
  assert.deepEqual(await warningsOf(rule, `
FROM scratch AS a
ENTRYPOINT ["/myapp"]
CMD ["/myapp"]
HEALTHCHECK CMD ["/myapp"]

FROM a AS b
ENTRYPOINT ["/myotherapp"]
CMD ["/myotherapp"]
HEALTHCHECK CMD ["/myotherapp"]
`), []);
});

test('RedundantTargetPlatform: FROM --platform=$TARGETPLATFORM alone', async () => {
  const rule = 'RedundantTargetPlatform';
  assert.deepEqual(await warningsOf(rule, '\nFROM --platform=$TARGETPLATFORM scratch\n'), [
    `2 ${rule}: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior`,
  ]);
  assert.deepEqual(await warningsOf(rule, '\nFROM --platform=${TARGETPLATFORM} scratch\n'), [
    `2 ${rule}: Setting platform to predefined \${TARGETPLATFORM} in FROM is redundant as this is the default behavior`,
  ]);
  assert.deepEqual(await warningsOf(rule, '\nFROM --platform=$BUILDPLATFORM scratch\n'), []);
  assert.deepEqual(await warningsOf(rule, '\nFROM --platform=${TARGETOS}/${TARGETARCH} scratch\n'), []);
});

test('SecretsUsedInArgOrEnv: ARG and ENV names with a secret word, unless it is public', async () => {
  const rule = 'SecretsUsedInArgOrEnv';
  const msg = (kw: string, key: string) => `${rule}: Do not use ARG or ENV instructions for sensitive data (${kw} "${key}")`;
  assert.deepEqual(await warningsOf(rule, `
FROM scratch
ARG SECRET_PASSPHRASE
ENV SUPER_Secret=foo
ENV password=bar secret=baz
ARG super_duper_secret_token=foo auth=bar
ENV apikey=bar sunflower=foo
ENV git_key=
ENV PUBLIC_KEY=
ARG public_token
`), [
    `3 ${msg('ARG', 'SECRET_PASSPHRASE')}`,
    `4 ${msg('ENV', 'SUPER_Secret')}`,
    `5 ${msg('ENV', 'password')}`,
    `5 ${msg('ENV', 'secret')}`,
    `6 ${msg('ARG', 'auth')}`,
    `6 ${msg('ARG', 'super_duper_secret_token')}`,
    `7 ${msg('ENV', 'apikey')}`,
    `8 ${msg('ENV', 'git_key')}`,
  ]);
  assert.deepEqual(await warningsOf(rule, 'FROM scratch\nARG TOKENIZER=x\nENV MONKEY=1 KEYS=2\n'), []);
});

test('InvalidDefaultArgInFrom: a base name the global ARG defaults alone make invalid', async () => {
  const rule = 'InvalidDefaultArgInFrom';
  const msg = (base: string) => `${rule}: Default value for ARG ${base} results in empty or invalid base image name`;
  assert.deepEqual(await warningsOf(rule, '\nARG VERSION\nFROM busybox:$VERSION\n', buildArgs({ VERSION: 'latest' })), [`3 ${msg('busybox:$VERSION')}`]);
  assert.deepEqual(await warningsOf(rule, '\nARG IMAGE\nFROM $IMAGE\n', buildArgs({ IMAGE: 'busybox:latest' })), [`3 ${msg('$IMAGE')}`]);
  assert.deepEqual(await warningsOf(rule, '\nARG SFX="box:"\nFROM busy${SFX}\n', buildArgs({ SFX: 'box:latest' })), [`3 ${msg('busy${SFX}')}`]);
  assert.deepEqual(await warningsOf(rule, '\nARG VERSION="latest"\nFROM busybox:${VERSION}\n', buildArgs({ VERSION: 'latest' })), []);
  assert.deepEqual(await warningsOf(rule, '\nARG BUSYBOX_VARIANT=""\nFROM busybox:stable${BUSYBOX_VARIANT}\n', buildArgs({ BUSYBOX_VARIANT: '-musl' })), []);
  assert.deepEqual(await warningsOf(rule, '\n\tARG BUSYBOX_VARIANT\n\tFROM busybox:stable${BUSYBOX_VARIANT}\n\t', buildArgs({ BUSYBOX_VARIANT: '-musl' })), []);
});

test('FromPlatformFlagConstDisallowed: a literal --platform, unless the stage name says which', async () => {
  const rule = 'FromPlatformFlagConstDisallowed';
  assert.deepEqual(await warningsOf(rule, '\nFROM --platform=linux/amd64 scratch\n'), [
    `2 ${rule}: FROM --platform flag should not use constant value "linux/amd64"`,
  ]);
  assert.deepEqual(await warningsOf(rule, '\nFROM --platform=linux/amd64 scratch AS my_amd64_stage\n'), []);
  assert.deepEqual(await warningsOf(rule, '\nFROM --platform=linux/amd64 scratch AS linux\n'), []);
  assert.deepEqual(await warningsOf(rule, '\nFROM --platform=$BUILDPLATFORM scratch\n'), []);
});

test('ExposeProtoCasing: a protocol not in lower case, per port', async () => {
  const rule = 'ExposeProtoCasing';
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n'), [
    `3 ${rule}: Defined protocol '80/TcP' in EXPOSE instruction should be lowercase`,
    `3 ${rule}: Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase`,
  ]);
  assert.deepEqual(await warningsOf(rule, '\nFROM scratch\nEXPOSE 80/tcp 8080 53/udp\n'), []);
});

test('a stage needed twice is checked once; a stage not needed gets the whole-file checks only', async () => {
  const df = `FROM alpine AS unused
MAINTAINER me@example.org
COPY $nope /
FROM alpine AS base
CMD ["a"]
CMD ["b"]
COPY $missing /
FROM base AS one
FROM base
COPY --from=base / /
COPY --from=one / /
`;
  const g = await graphOf(df);
  assert.deepEqual(g.stages.map((s) => s.index), [1, 2, 3]);
  assert.deepEqual(g.warnings.map((w) => `${w.location?.line} ${w.rule}`), [
    '2 MaintainerDeprecated',
    '5 MultipleInstructionsDisallowed',
    '7 UndefinedVar',
  ]);
});

test('# check=skip= silences a new rule; # check=error=true fails the build on one', async () => {
  const df = 'FROM alpine\nMAINTAINER me@example.org\nCOPY $nope /\n';
  assert.deepEqual((await graphOf(df)).warnings.map((w) => w.rule), ['MaintainerDeprecated', 'UndefinedVar']);
  assert.deepEqual((await graphOf(`# check=skip=UndefinedVar\n${df}`)).warnings.map((w) => w.rule), ['MaintainerDeprecated']);
  assert.deepEqual((await graphOf(`# check=skip=MaintainerDeprecated,UndefinedVar\n${df}`)).warnings, []);
  await assert.rejects(graphOf('# check=error=true\nFROM alpine\nEXPOSE 80/TCP\n'), (e: unknown) => {
    assert.match((e as Error).message, /^Dockerfile:3:1: lint violations \(# check=error=true\):\nwarning: Dockerfile:3:1: ExposeProtoCasing: Defined protocol '80\/TCP'/);
    return true;
  });
});
