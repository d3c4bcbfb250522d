// The busybox test rootfs plus the host's OpenSSH client tools (ssh, ssh-add, ssh-keygen), so a
// RUN step can talk to an agent with the real programs a user's step would run. The tools are
// dynamically linked: each is copied with the shared libraries `ldd` names, at the same paths,
// and the dynamic loader, which finds them in its default folders.

import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { makeBusyboxRootfs } from './busybox.js';

export const SSH_TOOLS = ['ssh', 'ssh-add', 'ssh-keygen'] as const;

function hostPath(program: string): string {
  return execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim();
}

/**
 * The files a program loads, from ldd's lines: `libx.so.1 => /path/libx.so.1 (0x...)` and the
 * loader's `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
 */
export function sharedLibraries(program: string): string[] {
  const out: string[] = [];
  for (const line of execFileSync('ldd', [program], { encoding: 'utf8' }).split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Copies a host file to the same path under `root` (the file a link names, not the link). */
async function copyAtSamePath(root: string, file: string, mode: number): Promise<void> {
  if (!isAbsolute(file)) throw new Error(`not an absolute path: ${file}`);
  const dest = join(root, file);
  await mkdir(dirname(dest), { recursive: true });
  await copyFile(file, dest);
  await chmod(dest, mode);
}

/** makeBusyboxRootfs, with ssh, ssh-add and ssh-keygen at their host paths and what they load. */
export async function makeSshToolsRootfs(dir: string): Promise<void> {
  await makeBusyboxRootfs(dir);
  const libraries = new Set<string>();
  for (const tool of SSH_TOOLS) {
    const path = hostPath(tool);
    await copyAtSamePath(dir, path, 0o755);
    for (const lib of sharedLibraries(path)) libraries.add(lib);
  }
  for (const lib of libraries) await copyAtSamePath(dir, lib, 0o755);
  // ssh wants a home with a .ssh it may write known hosts into.
  await mkdir(join(dir, 'root', '.ssh'), { recursive: true, mode: 0o700 });
}
