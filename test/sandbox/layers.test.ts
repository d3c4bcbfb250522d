// What a RUN changed becomes its layer, read from the upperdir alone: whiteouts for deletions,
// opaque folders for replaced ones, nothing of the sandbox's own mount points.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeFixture, describeTree, type Fixture } from './fixture.js';

let fx: Fixture;
let prepared: string;
before(async () => {
  fx = await makeFixture();
  const r = await fx.run(
    'mkdir -p /data/dir/sub /data/dir2 && cd /data && echo a > a && echo b > b && echo f > file && echo f2 > f2 ' +
      '&& echo x > dir/sub/x && echo old > dir2/old',
  );
  assert.ok(r.snapshot);
  prepared = r.snapshot;
});
after(() => fx.dispose());

test('creates, changes, deletes, renames, replaces and hard-links as an overlay diff', async () => {
  const r = await fx.run(
    [
      'cd /data',
      'echo n > new',
      'echo changed > a',
      'rm b',
      'mv file renamed',
      'rm -rf dir && echo now-file > dir',
      'rm f2 && mkdir f2 && echo in > f2/inner',
      'rm -rf dir2 && mkdir dir2 && echo fresh > dir2/fresh',
      'ln new newlink',
      'ln -s new sym',
    ].join(' && '),
    { layers: ['busybox', prepared] },
  );
  assert.ok(r.snapshot);
  assert.deepEqual(await describeTree(fx.store.snapshotFs(r.snapshot)), [
    'data/',
    'data/a = "changed\\n"',
    'data/b whiteout',
    'data/dir = "now-file\\n"',
    'data/dir2/ opaque',
    'data/dir2/fresh = "fresh\\n"',
    'data/f2/ opaque',
    'data/f2/inner = "in\\n"',
    'data/file whiteout',
    'data/new = "n\\n" nlink=2',
    'data/newlink = "n\\n" nlink=2',
    'data/renamed = "f\\n"',
    'data/sym -> new',
  ]);
  // The next step sees the merged result.
  const check = await fx.run('cd /data && ls -1 && cat dir f2/inner', { layers: ['busybox', prepared, r.snapshot] });
  assert.equal(check.snapshot, null);
  assert.equal(check.output, 'a\ndir\ndir2\nf2\nnew\nnewlink\nrenamed\nsym\nnow-file\nin\n');
});

test('mount points the sandbox made are not in the layer; /etc/hosts and /etc/resolv.conf are read-only, as BuildKit binds them', async () => {
  // busybox has no /proc, /dev, /sys, /etc/hosts, /etc/resolv.conf, /run.
  const writes = '! (echo 10.0.0.1 extra >> /etc/hosts) 2>/dev/null && ! (echo nameserver 10.0.0.1 > /etc/resolv.conf) 2>/dev/null';
  const r = await fx.run(`${writes} && ls /proc/self/ >/dev/null && echo ok > /root/f`, {
    op: { mounts: [{ type: 'tmpfs', target: '/run/scratch/deep' }] },
  });
  assert.ok(r.snapshot);
  assert.deepEqual(await describeTree(fx.store.snapshotFs(r.snapshot)), ['root/', 'root/f = "ok\\n"']);
});

test('/etc/hostname is the image\'s own file, as in BuildKit: a step writes it into its layer, the next deletes it', async () => {
  const w = await fx.run('test ! -e /etc/hostname && echo myhost > /etc/hostname');
  assert.ok(w.snapshot);
  assert.deepEqual(await describeTree(fx.store.snapshotFs(w.snapshot)), ['etc/', 'etc/hostname = "myhost\\n"']);
  const d = await fx.run('cat /etc/hostname && rm /etc/hostname', { layers: ['busybox', w.snapshot] });
  assert.equal(d.output, 'myhost\n');
  assert.ok(d.snapshot);
  assert.deepEqual(await describeTree(fx.store.snapshotFs(d.snapshot)), ['etc/', 'etc/hostname whiteout']);
});

test('a deleted lower file that the sandbox mounts over stays deleted', async () => {
  const r = await fx.run('rm /etc/group', { layers: ['busybox'] });
  assert.ok(r.snapshot);
  assert.deepEqual(await describeTree(fx.store.snapshotFs(r.snapshot)), ['etc/', 'etc/group whiteout']);
});
