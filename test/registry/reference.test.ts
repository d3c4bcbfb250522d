import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseReference,
  normalizeReference,
  familiarReference,
  referenceTarget,
  isLoopbackRegistry,
  normalizeRegistryHost,
} from '../../src/registry/reference.js';
import { KilnError } from '../../src/util/errors.js';

const D = 'sha256:' + 'ab'.repeat(32);

test('references normalise the way docker does', () => {
  const cases: [string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['user/img', 'docker.io/user/img:latest'],
    ['user/sub/img:v1', 'docker.io/user/sub/img:v1'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['host:5000/img:tag', 'host:5000/img:tag'],
    ['host:5000/img', 'host:5000/img:latest'],
    ['localhost/img', 'localhost/img:latest'],
    ['localhost:5000/a/b', 'localhost:5000/a/b:latest'],
    ['127.0.0.1:5000/x:1', '127.0.0.1:5000/x:1'],
    ['[::1]:5000/x', '[::1]:5000/x:latest'],
    ['ghcr.io/o/r', 'ghcr.io/o/r:latest'],
    [`img@${D}`, `docker.io/library/img@${D}`],
    [`img:1.0@${D}`, `docker.io/library/img:1.0@${D}`],
    ['localhost:5000', 'docker.io/library/localhost:5000'],
    ['a__b/c.d-e---f', 'docker.io/a__b/c.d-e---f:latest'],
  ];
  for (const [input, want] of cases) assert.equal(normalizeReference(input), want, input);
});

test('parts: registry, repository, tag, digest', () => {
  assert.deepEqual(parseReference('host:5000/ns/img:tag'), {
    registry: 'host:5000',
    repository: 'ns/img',
    tag: 'tag',
    digest: undefined,
  });
  const both = parseReference(`img:1@${D}`);
  assert.equal(both.tag, '1');
  assert.equal(both.digest, D);
  assert.equal(referenceTarget(both), D, 'the digest wins over the tag');
  assert.equal(referenceTarget(parseReference('img')), 'latest');
});

test('familiar names drop docker.io and library/', () => {
  assert.equal(familiarReference(parseReference('busybox')), 'busybox:latest');
  assert.equal(familiarReference(parseReference('user/img:2')), 'user/img:2');
  assert.equal(familiarReference(parseReference('h:1/x')), 'h:1/x:latest');
});

test('invalid references give clear errors naming the input', () => {
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['Busybox', /must be lowercase/],
    ['user/Img', /must be lowercase/],
    ['img:', /tag "" is not valid/],
    ['img:-x', /tag "-x" is not valid/],
    ['img@sha256:abc', /not a sha256 digest|not a digest/],
    ['img@notadigest', /not a digest/],
    ['host:5000/', /repository path has an empty component|empty/],
    ['a//b', /empty component/],
    ['img_/x', /not a valid repository component/],
    ['-host.io/x', /not a valid registry host/],
    ['my image', /whitespace/],
    ['ab'.repeat(32), /image id/],
    [`${'a'.repeat(250)}/b/c`, /longer than 255/],
  ];
  for (const [input, re] of bad) {
    assert.throws(
      () => parseReference(input, 'FROM'),
      (err: unknown) => {
        assert.ok(err instanceof KilnError, input);
        assert.match(err.message, /^FROM: invalid reference "/);
        assert.match(err.message, re, input);
        return true;
      },
    );
  }
});

test('loopback hosts and registry host normalisation', () => {
  assert.ok(isLoopbackRegistry('localhost:5000'));
  assert.ok(isLoopbackRegistry('127.0.0.1:1234'));
  assert.ok(isLoopbackRegistry('[::1]:5000'));
  assert.ok(!isLoopbackRegistry('example.com:5000'));
  assert.ok(!isLoopbackRegistry('docker.io'));
  assert.equal(normalizeRegistryHost('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normalizeRegistryHost('http://localhost:5000/'), 'localhost:5000');
});
