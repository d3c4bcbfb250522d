import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfileText } from '../../src/frontend/parse.js';
import { parseInstructions } from '../../src/frontend/instructions/parse.js';
import { parseExposePort } from '../../src/frontend/instructions/values.js';
import { KilnError } from '../../src/util/errors.js';

function check(text: string): void {
  parseInstructions(parseDockerfileText(text, 'Dockerfile'), text);
}

// Each Dockerfile must fail with exactly this message (FILE:LINE:COLUMN: what is wrong).
const table: [string, string][] = [
  ['FROM a\nFOO bar\n', 'Dockerfile:2:1: unknown instruction: FOO'],
  ['FROM a\nRUN --bogus=1 ls\n', 'Dockerfile:2:5: unknown flag: --bogus (RUN takes --mount, --network, --security)'],
  ['FROM a\nCMD --x echo\n', 'Dockerfile:2:5: unknown flag: --x (CMD takes no flags)'],
  ['FROM a\nCOPY --checksum=sha256:00 a b\n', 'Dockerfile:2:6: unknown flag: --checksum (COPY takes --from, --chown, --chmod, --link, --parents, --exclude)'],
  ['FROM a\nADD --from=x a b\n', 'Dockerfile:2:5: unknown flag: --from (ADD takes --chown, --chmod, --link, --exclude, --checksum, --keep-git-dir, --unpack)'],
  ['FROM a b\n', 'Dockerfile:1:1: FROM requires either one or three arguments (FROM image [AS name])'],
  ['FROM a TO b\n', 'Dockerfile:1:1: FROM: expected "AS" before the stage name, got "TO"'],
  ['FROM a AS 1st\n', 'Dockerfile:1:1: invalid name for build stage: "1st", name can\'t start with a number or contain symbols'],
  ['RUN ls\nFROM a\n', 'Dockerfile:1:1: RUN before the first FROM: no build stage in current context (only ARG may come before FROM)'],
  ['FROM a\nRUN --network=bridge ls\n', 'Dockerfile:2:5: unsupported network mode "bridge" (default, none or host)'],
  ['FROM a\nRUN --security=root ls\n', 'Dockerfile:2:5: unsupported security mode "root" (sandbox or insecure)'],
  ['FROM a\nRUN --mount=type=nfs,target=/x ls\n', 'Dockerfile:2:5: unsupported mount type "nfs" (use bind, cache, tmpfs, secret or ssh)'],
  ['FROM a\nRUN --mount=type=cache ls\n', 'Dockerfile:2:5: mount type=cache requires a target (target=/path)'],
  ['FROM a\nRUN --mount=type=tmpfs,target=/t,id=x ls\n', 'Dockerfile:2:5: unexpected key "id" for mount type=tmpfs in "type=tmpfs,target=/t,id=x"'],
  ['FROM a\nRUN --mount=type=cache,target=/c,sharing=all ls\n', 'Dockerfile:2:5: invalid sharing "all" (shared, private or locked)'],
  ['FROM a\nRUN --mount=type=secret,id=s,mode=rw ls\n', 'Dockerfile:2:5: invalid mode "rw": expected an octal number'],
  ['FROM a\nRUN --mount=type=bind,target=/x,ro=maybe ls\n', 'Dockerfile:2:5: invalid value for ro: "maybe" (true or false)'],
  ['FROM a\nRUN\n', 'Dockerfile:2:1: RUN requires at least one argument'],
  ['FROM a\nSHELL /bin/bash -c\n', 'Dockerfile:2:1: SHELL requires the arguments to be in JSON form (SHELL ["executable", "parameters"])'],
  ['FROM a\nEXPOSE 80/xyz\n', 'Dockerfile:2:1: EXPOSE: invalid protocol "xyz" in port "80/xyz": expected tcp, udp or sctp'],
  ['FROM a\nEXPOSE 90-80\n', 'Dockerfile:2:1: EXPOSE: invalid port range "90-80": end is below start'],
  ['FROM a\nEXPOSE http\n', 'Dockerfile:2:1: EXPOSE: invalid port "http": expected PORT[-PORT][/tcp|/udp|/sctp]'],
  ['FROM a\nCOPY onlyone\n', 'Dockerfile:2:1: COPY requires at least two arguments, but only one was provided. Destination could not be determined'],
  ['FROM a\nCOPY --chmod=999 a /b\n', 'Dockerfile:2:6: invalid chmod value "999": expected octal (0755) or symbolic (u+x,g-w) mode'],
  ['FROM a\nCOPY --link=maybe a /b\n', 'Dockerfile:2:6: expecting boolean value for flag --link, not: maybe'],
  ['FROM a\nCOPY --from=a --from=b x /y\n', 'Dockerfile:2:6: duplicate flag specified: --from'],
  ['FROM a\nADD --checksum=md5:abc http://x/y /z\n', 'Dockerfile:2:5: invalid checksum "md5:abc": expected sha256:<hex> (a URL) or a commit (a git repository)'],
  ['FROM a\nWORKDIR\n', 'Dockerfile:2:1: WORKDIR requires exactly one argument'],
  ['FROM a\nUSER\n', 'Dockerfile:2:1: USER requires exactly one argument'],
  ['FROM a\nSTOPSIGNAL SIGFOO\n', 'Dockerfile:2:1: STOPSIGNAL: invalid signal "SIGFOO"'],
  ['FROM a\nARG =x\n', 'Dockerfile:2:1: ARG names can not be blank'],
  ['FROM a\nONBUILD ONBUILD RUN ls\n', 'Dockerfile:2:1: chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed'],
  ['FROM a\nONBUILD FROM b\n', 'Dockerfile:2:1: FROM isn\'t allowed as an ONBUILD trigger'],
  ['FROM a\nONBUILD RUN --nope ls\n', 'Dockerfile:2:13: unknown flag: --nope (RUN takes --mount, --network, --security)'],
  ['FROM a\nHEALTHCHECK\n', 'Dockerfile:2:1: HEALTHCHECK requires at least one argument'],
  ['FROM a\nHEALTHCHECK NONE extra\n', 'Dockerfile:2:1: HEALTHCHECK NONE takes no arguments'],
  ['FROM a\nHEALTHCHECK PING x\n', 'Dockerfile:2:1: unknown type "PING" in HEALTHCHECK (try CMD)'],
  ['FROM a\nHEALTHCHECK CMD\n', 'Dockerfile:2:1: missing command after HEALTHCHECK CMD'],
  ['FROM a\nHEALTHCHECK --interval=5 CMD true\n', 'Dockerfile:2:13: --interval: time: missing unit in duration "5"'],
  ['FROM a\nHEALTHCHECK --timeout=-1s CMD true\n', 'Dockerfile:2:13: --timeout "-1s" cannot be negative'],
  ['FROM a\nHEALTHCHECK --start-period=10us CMD true\n', 'Dockerfile:2:13: --start-period "10us" cannot be less than 1ms'],
  ['FROM a\nHEALTHCHECK --retries=-2 CMD true\n', 'Dockerfile:2:13: --retries cannot be negative'],
  ['FROM a\n  ENV\n', 'Dockerfile:2:3: ENV requires at least one argument'],
  ['FROM a\nENV a=1 b\n', 'Dockerfile:2:1: Syntax error - can\'t find = in "b". Must be of the form: name=value'],
  ['FROM a\nCMD ["a", 1]\n', 'Dockerfile:2:1: when using JSON array syntax, arrays must be comprised of strings only'],
  ['FROM a\nRUN <<EOF\nls\n', 'Dockerfile:2:1: unterminated heredoc'],
  ['# escape=x\nFROM a\n', 'Dockerfile:1:1: invalid escape token \'x\' does not match ` or \\'],
  ['# check=skip=all;foo=1\nFROM a\n', 'Dockerfile:1:1: invalid check directive "skip=all;foo=1": unknown key "foo"'],
  ['# only a comment\n', 'Dockerfile:1:1: file with no instructions'],
  ['ARG x\n', 'Dockerfile:1:1: the Dockerfile has no FROM instruction'],
  ['FROM a\nVOLUME [""]\n', 'Dockerfile:2:1: VOLUME specified can not be an empty string'],
];

test(`malformed Dockerfiles: ${table.length} exact error messages`, () => {
  assert.ok(table.length >= 25);
  for (const [text, want] of table) {
    assert.throws(() => check(text), (e: unknown) => {
      assert.ok(e instanceof KilnError, `not a KilnError for ${JSON.stringify(text)}: ${String(e)}`);
      assert.equal(e.message, want, JSON.stringify(text));
      return true;
    }, `no error for ${JSON.stringify(text)}`);
  }
});

test('every instruction and flag of the reference is accepted', () => {
  const text = `# syntax=docker/dockerfile:1
# check=skip=all;error=true
ARG BASE=alpine
FROM --platform=$BUILDPLATFORM \${BASE} AS build
RUN --mount=type=bind,source=.,target=/src,rw --mount=type=cache,target=/root/.cache,id=c,sharing=locked,mode=0700,uid=1,gid=2,from=build,source=/x,ro \\
    --mount=type=tmpfs,target=/t,size=64m --mount=type=secret,id=tok,target=/s,env=TOK,required=true,mode=0440,uid=0,gid=0 \\
    --mount=type=ssh,id=default,target=/ssh,required,mode=0600 --network=none --security=insecure make
RUN ["echo", "exec"]
RUN <<EOF
echo heredoc
EOF
CMD ["run"]
CMD run
LABEL a=b "c d"="e f"
LABEL legacy value
MAINTAINER me
EXPOSE 80 53/udp 8000-8010/tcp 127.0.0.1:8080:81 9000:82/udp
ENV A=1 B="2 3"
ENV LEGACY value here
ADD --chown=1:2 --chmod=0644 --link --exclude=*.tmp --checksum=sha256:${'a'.repeat(64)} --keep-git-dir=true --unpack=false https://example.com/x.tar /x/
COPY --from=build --chown=app --chmod=u+x,g-w --link --parents --exclude=a --exclude=b src/ /app/
COPY <<EOF /etc/conf
x
EOF
ENTRYPOINT ["/bin/app"]
VOLUME ["/data"]
VOLUME /a /b
USER app:staff
WORKDIR /app
ARG X Y=2 Z
ONBUILD RUN echo hi
STOPSIGNAL SIGTERM
STOPSIGNAL 65
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/
HEALTHCHECK --interval=5s NONE
SHELL ["/bin/bash", "-c"]
`;
  const df = parseDockerfileText(text, 'Dockerfile');
  const r = parseInstructions(df, text);
  assert.equal(r.metaArgs.length, 1);
  assert.equal(r.stages.length, 1);
  assert.deepEqual(df.check, { skip: 'all', error: true });
  const kinds = r.stages[0]!.commands.map((c) => c.kind);
  assert.deepEqual(kinds, ['run', 'run', 'run', 'cmd', 'cmd', 'label', 'label', 'maintainer', 'expose', 'env', 'env', 'add', 'copy', 'copy', 'entrypoint', 'volume', 'volume', 'user', 'workdir', 'arg', 'onbuild', 'stopsignal', 'stopsignal', 'healthcheck', 'healthcheck', 'shell']);
  const run = r.stages[0]!.commands[0]!;
  assert.ok(run.kind === 'run');
  assert.deepEqual(run.mounts.map((m) => m.type), ['bind', 'cache', 'tmpfs', 'secret', 'ssh']);
  assert.equal(run.mounts[0]!.options.get('readonly'), 'false');
  assert.equal(run.mounts[1]!.options.get('readonly'), 'true');
  // docker run's IP:HOSTPORT:PORT exposes the container's PORT, as in BuildKit.
  assert.deepEqual(parseExposePort('127.0.0.1:8080:81'), ['81/tcp']);
  assert.deepEqual(parseExposePort('9000:82/udp'), ['82/udp']);
  assert.deepEqual(parseExposePort('[::1]:8080:83-84'), ['83/tcp', '84/tcp']);
  const hc = r.stages[0]!.commands[23]!;
  assert.ok(hc.kind === 'healthcheck');
  assert.deepEqual([hc.interval, hc.timeout, hc.startPeriod, hc.startInterval, hc.retries], [30e9, 3e9, 5e9, 1e9, 3]);
  assert.deepEqual(hc.test, ['CMD-SHELL', 'curl -f http://localhost/']);
});
