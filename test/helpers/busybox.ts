// A minimal Linux root filesystem from Debian's busybox-static, for tests that run RUN steps
// or `podman run`. Built with plain fs calls, then turned into an image with FROM scratch + COPY.
import { copyFile, mkdir, symlink, writeFile, chmod } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export const BUSYBOX = '/bin/busybox';

export async function makeBusyboxRootfs(dir: string): Promise<void> {
  for (const d of ['bin', 'etc', 'tmp', 'root', 'home', 'var', 'usr/bin', 'usr/sbin', 'sbin']) {
    await mkdir(join(dir, d), { recursive: true });
  }
  await chmod(join(dir, 'tmp'), 0o1777);
  await copyFile(BUSYBOX, join(dir, 'bin', 'busybox'));
  await chmod(join(dir, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) {
    if (a === 'busybox') continue;
    await symlink('busybox', join(dir, 'bin', a));
  }
  await writeFile(
    join(dir, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n',
  );
  await writeFile(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\nstaff:x:50:app\n');
}

/** A Dockerfile that turns the rootfs folder (the context) into an image. */
export const BUSYBOX_DOCKERFILE = 'FROM scratch\nCOPY . /\nCMD ["/bin/sh"]\n';
