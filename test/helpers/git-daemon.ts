// A git server on loopback for git sources: `git daemon` over git://, serving the bare
// repositories in one folder, and helpers to make and change those repositories.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'kiln', GIT_AUTHOR_EMAIL: 'kiln@test', GIT_COMMITTER_NAME: 'kiln', GIT_COMMITTER_EMAIL: 'kiln@test',
  GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z', GIT_CONFIG_NOSYSTEM: '1', HOME: '/nonexistent',
};

export function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], { env: GIT_ENV, encoding: 'utf8' }).trim();
}

/** A working repository with `files` committed on branch main. Values starting `#!` are made executable. */
export async function makeRepo(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  git(dir, 'init', '-q', '-b', 'main');
  await commitFiles(dir, files, 'first');
}

export async function commitFiles(dir: string, files: Record<string, string>, message: string): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content, { mode: content.startsWith('#!') ? 0o755 : 0o644 });
  }
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', message);
  return git(dir, 'rev-parse', 'HEAD');
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface GitDaemon {
  /** `git://127.0.0.1:PORT/` */
  url: string;
  /** The folder whose bare repositories it serves. */
  root: string;
  stop(): void;
}

export async function startGitDaemon(root: string): Promise<GitDaemon> {
  await mkdir(root, { recursive: true });
  const port = await freePort();
  const child: ChildProcess = spawn('git', ['daemon', '--reuseaddr', '--export-all', '--informative-errors', `--base-path=${root}`, '--listen=127.0.0.1', `--port=${port}`, root], {
    stdio: 'ignore', env: GIT_ENV,
  });
  const url = `git://127.0.0.1:${port}/`;
  // Ready when it answers; a repository that is not there yet still gets an answer.
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const probe = spawn('git', ['ls-remote', `${url}none.git`], { stdio: 'pipe', env: GIT_ENV });
      let err = '';
      probe.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      probe.on('close', () => resolve(!/Connection refused|unable to connect/i.test(err)));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url, root, stop: () => child.kill('SIGTERM') };
}

/** Publishes the working repository `dir` as `NAME.git` of the daemon (again after each change). */
export function publish(daemon: GitDaemon, dir: string, name: string): void {
  const bare = join(daemon.root, `${name}.git`);
  execFileSync('rm', ['-rf', bare]);
  execFileSync('git', ['clone', '-q', '--bare', dir, bare], { env: GIT_ENV });
}
