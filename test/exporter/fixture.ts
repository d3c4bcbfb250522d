// One test image, made through the store API: a busybox rootfs, then a layer that adds files
// with owners, modes, links and special bits, deletes a file and a folder (whiteouts) and
// replaces a folder's contents (opaque). `expectedTree` builds the same final filesystem with
// plain fs calls, as the independent answer to compare unpacked outputs with.
import { chmod, chown, link, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../../src/store/store.js';
import { writeImage, type WrittenImage } from '../../src/image/assemble.js';
import { makeWhiteout, setXattr } from '../../src/util/syscalls.js';
import { makeBusyboxRootfs } from '../helpers/busybox.js';
import { commitTestSnapshot, touchTree } from '../image/fixtures.js';

export const FILE_TEXT = 'hello from kiln\n';

async function addFiles(d: string): Promise<void> {
  await writeFile(join(d, 'file'), FILE_TEXT);
  await mkdir(join(d, 'etc/app'), { recursive: true });
  await writeFile(join(d, 'etc/app/conf'), 'key=value\n');
  await chown(join(d, 'etc/app/conf'), 1000, 50);
  await chmod(join(d, 'etc/app/conf'), 0o640);
  await link(join(d, 'etc/app/conf'), join(d, 'etc/app/conf.hard'));
  await symlink('conf', join(d, 'etc/app/link'));
  await symlink('/etc/app/conf', join(d, 'etc/app/abslink'));
  await writeFile(join(d, 'bin/suid-tool'), '#!/bin/sh\necho suid\n');
  await chmod(join(d, 'bin/suid-tool'), 0o4755);
  await mkdir(join(d, 'data'), { mode: 0o1777 });
  await chmod(join(d, 'data'), 0o1777);
  await mkdir(join(d, 'empty/dir'), { recursive: true });
  await chown(join(d, 'empty'), 1000, 1000);
  await mkdir(join(d, 'var/new'), { recursive: true });
  await writeFile(join(d, 'var/new/x'), 'x');
}

export async function makeTestImage(store: Store, opts: { mtime?: number; sourceDateEpoch?: number; compression?: 'gzip' | 'zstd' | 'uncompressed' } = {}): Promise<WrittenImage> {
  const mtime = opts.mtime ?? 1_600_000_000;
  const base = await commitTestSnapshot(store, async (d) => {
    await makeBusyboxRootfs(d);
    await mkdir(join(d, 'var/old'), { recursive: true });
    await writeFile(join(d, 'var/old/y'), 'y');
    await writeFile(join(d, 'etc/motd'), 'to be deleted');
    await touchTree(d, mtime);
  });
  const top = await commitTestSnapshot(store, async (d) => {
    await mkdir(join(d, 'bin'));
    await mkdir(join(d, 'etc'));
    await mkdir(join(d, 'var'));
    setXattr(join(d, 'var'), 'trusted.overlay.opaque', Buffer.from('y'));
    makeWhiteout(join(d, 'etc/motd'));
    makeWhiteout(join(d, 'home'));
    await addFiles(d);
    await touchTree(d, mtime);
  });
  return writeImage(store, {
    layers: [base, top],
    config: { architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin:/usr/bin'], Cmd: ['/bin/sh'], Labels: { 'org.example': 'kiln' } } },
    history: [{ created_by: 'COPY rootfs /' }, { created_by: 'LABEL org.example=kiln', empty_layer: true }, { created_by: 'COPY files /' }],
    sourceDateEpoch: opts.sourceDateEpoch,
    compression: opts.compression,
  });
}

export async function expectedTree(d: string): Promise<void> {
  await makeBusyboxRootfs(d);
  await mkdir(join(d, 'var/old'), { recursive: true });
  await writeFile(join(d, 'var/old/y'), 'y');
  await rm(join(d, 'var'), { recursive: true });
  await mkdir(join(d, 'var'));
  await rm(join(d, 'home'), { recursive: true });
  await addFiles(d);
}
