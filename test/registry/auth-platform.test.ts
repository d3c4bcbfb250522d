// Pure logic: WWW-Authenticate parsing and platform matching.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseChallenges } from '../../src/registry/auth.js';
import { parsePlatform, selectPlatform, formatPlatform, platformMatches } from '../../src/registry/platform.js';
import { KilnError } from '../../src/util/errors.js';

test('WWW-Authenticate challenges: quoted values with commas and escapes, several schemes', () => {
  const cs = parseChallenges(
    'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"',
  );
  assert.deepEqual(cs, [
    {
      scheme: 'bearer',
      params: {
        realm: 'https://auth.example/token',
        service: 'registry.example',
        scope: 'repository:a/b:pull,push repository:c:pull',
        error: 'insufficient_scope',
      },
    },
  ]);
  const two = parseChallenges('Basic realm="x \\"y\\"", Bearer realm=https://t/tok');
  assert.deepEqual(two.map((c) => [c.scheme, c.params.realm]), [
    ['basic', 'x "y"'],
    ['bearer', 'https://t/tok'],
  ]);
});

test('platforms: parse, normalise, match, select', () => {
  assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  // As containerd normalises (BuildKit's TARGETPLATFORM, the image config): arm64 drops v8.
  assert.deepEqual(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(parsePlatform('linux/aarch64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(parsePlatform('linux/arm64/9.0'), { os: 'linux', architecture: 'arm64', variant: 'v9' });
  assert.deepEqual(parsePlatform('linux/armel'), { os: 'linux', architecture: 'arm', variant: 'v6' });
  assert.deepEqual(parsePlatform('linux/i386'), { os: 'linux', architecture: '386' });
  assert.ok(platformMatches({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }), 'an index entry that spells v8 out');
  assert.deepEqual(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(formatPlatform(parsePlatform('linux/arm/6')), 'linux/arm/v6');
  assert.throws(() => parsePlatform('linux/'), (e: unknown) => e instanceof KilnError && /--platform: "linux\/" is not a platform/.test(e.message));
  assert.throws(() => parsePlatform('linux/am d64'), /is not a platform/);
  // A list is buildx's multi-platform build, which kiln does not do: it must not pass for os/arch/variant.
  assert.throws(() => parsePlatform('linux/amd64,linux/arm64'), (e: unknown) => e instanceof KilnError && e.exitCode === 2 && /kiln builds one platform at a time/.test(e.message));
  assert.ok(platformMatches({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64' }));
  assert.ok(!platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' }));
  const d = (digest: string, architecture: string, variant?: string) => ({
    mediaType: 'm',
    digest,
    size: 1,
    platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
  });
  const list = [d('a', 'arm', 'v6'), d('b', 'arm', 'v7'), d('c', 'amd64'), { mediaType: 'm', digest: 'att', size: 1, platform: { os: 'unknown', architecture: 'unknown' } }];
  assert.equal(selectPlatform(list, parsePlatform('linux/arm/v7'), 'img').digest, 'b');
  assert.equal(selectPlatform(list, parsePlatform('linux/amd64'), 'img').digest, 'c');
  assert.throws(() => selectPlatform(list, parsePlatform('linux/riscv64'), 'img'), /img: no image for platform linux\/riscv64 \(the index has: linux\/arm\/v6, linux\/arm\/v7, linux\/amd64\)/);
});
