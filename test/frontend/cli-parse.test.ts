import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { conformanceDir } from '../helpers/paths.js';
import { runKiln } from '../helpers/kiln.js';
import { tempDir } from '../helpers/tmp.js';

const dir = join(conformanceDir, 'buildkit-dockerfile-parser');

test('kiln parse --dump prints every testfile result byte for byte', async () => {
  const cases = readdirSync(join(dir, 'testfiles')).sort();
  assert.equal(cases.length, 33);
  // A few processes at a time: each is mostly Node start-up.
  for (let i = 0; i < cases.length; i += 4) {
    await Promise.all(cases.slice(i, i + 4).map(async (c) => {
      const r = await runKiln(['parse', '--dump', '-f', join(dir, 'testfiles', c, 'Dockerfile')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, readFileSync(join(dir, 'testfiles', c, 'result'), 'utf8'), c);
    }));
  }
});

test('kiln parse fails on the negative testfiles with FILE:LINE:COLUMN', async () => {
  for (const c of readdirSync(join(dir, 'testfiles-negative')).sort()) {
    const f = join(dir, 'testfiles-negative', c, 'Dockerfile');
    const r = await runKiln(['parse', '--dump', '-f', f]);
    assert.notEqual(r.code, 0, c);
    assert.match(r.stderr, new RegExp(`^error: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `), c);
    assert.equal(r.stdout, '');
  }
});

test('kiln parse reads ./Dockerfile by default and warns about a foreign syntax image', async () => {
  const d = await tempDir();
  await writeFile(join(d, 'Dockerfile'), '# syntax=example.com/my/frontend:1\nFROM a\nRUN x \\\n\n y\n');
  const r = await runKiln(['parse', '--dump'], { cwd: d });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '(from "a")\n(run "x  y")\n');
  assert.match(r.stderr, /warning: Dockerfile:1:1: syntax directive names frontend image "example\.com\/my\/frontend:1"/);
  assert.match(r.stderr, /warning: Dockerfile:5:1: NoEmptyContinuation: Empty continuation line found in: RUN x  y/);
  await writeFile(join(d, 'Dockerfile'), '# syntax=docker/dockerfile:1.7\nFROM a\n');
  const ok = await runKiln(['parse', '--dump'], { cwd: d });
  assert.equal(ok.stderr, '');
});
