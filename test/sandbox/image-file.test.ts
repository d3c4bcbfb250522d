// /etc/passwd and /etc/group read through layers: top copy wins, whiteouts and opaque folders
// hide what is below, symlinks resolve inside the image.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImageFile } from '../../src/worker/exec/image-file.js';
import { makeWhiteout, setXattr } from '../../src/util/syscalls.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-image-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function layer(name: string, files: Record<string, string | null>, opaque: string[] = []): string {
  const l = join(dir, name);
  mkdirSync(l);
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(join(l, p, '..'), { recursive: true });
    if (content === null) makeWhiteout(join(l, p));
    else if (content.startsWith('->')) symlinkSync(content.slice(2), join(l, p));
    else writeFileSync(join(l, p), content);
  }
  for (const o of opaque) setXattr(join(l, o), 'trusted.overlay.opaque', Buffer.from('y'));
  return l;
}

test('top layer wins; a whiteout hides the file; an opaque /etc hides the layers below', async () => {
  const base = layer('base', { 'etc/passwd': 'base', 'etc/group': 'g-base' });
  const mid = layer('mid', { 'etc/passwd': 'mid' });
  const wh = layer('wh', { 'etc/group': null });
  const op = layer('op', { 'etc/other': 'x' }, ['etc']);
  assert.equal((await readImageFile([base, mid], '/etc/passwd'))?.toString(), 'mid');
  assert.equal((await readImageFile([base, mid], '/etc/group'))?.toString(), 'g-base');
  assert.equal(await readImageFile([base, mid, wh], '/etc/group'), undefined);
  assert.equal(await readImageFile([base, mid, op], '/etc/passwd'), undefined);
  assert.equal(await readImageFile([], '/etc/passwd'), undefined);
});

test('a symlinked file resolves inside the image', async () => {
  const base = layer('sym-base', { 'usr/lib/passwd': 'real', 'etc/passwd': '->../usr/lib/passwd' });
  assert.equal((await readImageFile([base], '/etc/passwd'))?.toString(), 'real');
  const abs = layer('sym-abs', { 'etc/passwd': '->/usr/lib/passwd' });
  assert.equal((await readImageFile([base, abs], '/etc/passwd'))?.toString(), 'real');
});
