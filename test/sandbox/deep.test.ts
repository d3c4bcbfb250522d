// A stack deeper than one page of overlay options can name: lowerdirs go through short links.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeFixture } from './fixture.js';

test('a RUN over 150 layers sees every layer and the top copy of each file', async () => {
  const fx = await makeFixture();
  after(() => fx.dispose());
  const layers = ['busybox'];
  for (let i = 0; i < 150; i++) {
    const staged = await fx.store.tempDir('layer');
    await mkdir(join(staged, 'stack'), { recursive: true });
    await writeFile(join(staged, 'stack', `f${i}`), `${i}\n`);
    await writeFile(join(staged, 'stack', 'top'), `${i}\n`);
    const id = `deep-layer-with-a-long-identifier-to-fill-the-options-page-${String(i).padStart(4, '0')}`;
    await fx.store.commitSnapshot(id, staged, { source: 'layer' });
    layers.push(id);
  }
  const r = await fx.run('ls /stack | wc -l; cat /stack/top /stack/f0 /stack/f149', { layers });
  assert.equal(r.output.replace(/ +/g, ''), '151\n149\n0\n149\n');
});
