// A real OpenSSH server on loopback for git over ssh: `sshd -D -e` with a configuration, host key
// and authorized keys of its own, so a test decides which key gets in and what known_hosts says.
// Everything it needs is in its own folder; nothing of the machine's sshd setup is read or changed.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './registry.js';
import { hostProcesses } from '../sandbox/procs.js';

export interface Sshd {
  port: number;
  /** A known_hosts file with one line: `[127.0.0.1]:PORT <host key>`. */
  knownHostsFile: string;
  /** Lets the holder of this public key (a `.pub` file's text) log in, as any user. */
  authorize(pubKeyText: string): void;
  /** Stops the server and every connection it still serves; resolves once they are gone. */
  stop(): Promise<void>;
}

/** sshd refuses to start unless run by its absolute path; sbin is often not on a test's PATH. */
function sshdPath(): string {
  const path = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
  return execFileSync('sh', ['-c', 'command -v sshd'], { encoding: 'utf8', env: { ...process.env, PATH: path } }).trim();
}

function config(dir: string, port: number): string {
  return [
    `ListenAddress 127.0.0.1:${port}`,
    `HostKey ${join(dir, 'host_ed25519')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    // No PAM, no passwords: a key is the only way in. StrictModes would refuse a key file in a
    // temporary folder that others can list.
    'UsePAM no',
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'PidFile none',
    // The post-quantum default key exchange costs ~150 ms a connection on a slow CPU; a test's
    // few dozen connections need no more than curve25519.
    'KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org',
    '',
  ].join('\n');
}

/** Starts sshd in `dir` (made if missing) and resolves once it greets a connection. */
export async function startSshd(dir: string): Promise<Sshd> {
  await mkdir(dir, { recursive: true });
  // The privilege-separated child chroots here; a package install without a service never makes it.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'host_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kiln-test-sshd', '-f', hostKey], { stdio: 'ignore' });
  writeFileSync(join(dir, 'authorized_keys'), '');
  const port = await freePort();
  const configFile = join(dir, 'sshd_config');
  writeFileSync(configFile, config(dir, port));
  const knownHostsFile = join(dir, 'known_hosts');
  const [type, key] = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
  writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${type} ${key}\n`);

  const child = spawn(sshdPath(), ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = () => stopSshd(child, exited);
  try {
    await waitForGreeting(port, child, () => log);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port,
    knownHostsFile,
    authorize: (pubKeyText) => appendFileSync(join(dir, 'authorized_keys'), `${pubKeyText.trim()}\n`),
    stop,
  };
}

/** Whether a connection to the port gets an SSH banner. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(2000, () => s.destroy());
    s.once('data', (d: Buffer) => {
      s.destroy();
      resolve(d.toString('latin1').startsWith('SSH-'));
    });
    s.once('error', () => resolve(false));
    s.once('close', () => resolve(false));
  });
}

async function waitForGreeting(port: number, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`sshd exited early:\n${log()}`);
    if (await greets(port)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`sshd did not answer on 127.0.0.1:${port}:\n${log()}`);
}

/** Pids of every descendant of `pid`, each before its own children. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of hostProcesses()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
}

/**
 * sshd serves each connection in a child in a session of its own, which outlives the listener
 * and would be re-parented to init: those go first, deepest first, each reaped by its parent
 * before that parent goes, then the listener.
 */
async function stopSshd(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  for (const pid of descendants(child.pid).reverse()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      continue; // already gone
    }
    await gone(pid);
  }
  child.kill('SIGTERM');
  await exited;
}
