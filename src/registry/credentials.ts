// Registry credentials in docker's own format, so `docker login` and `kiln login` share them:
// config.json under $DOCKER_CONFIG (or ~/.docker) with `auths` (base64 user:password),
// `credsStore` (one helper for all hosts) and `credHelpers` (a helper per host), where a
// helper is a `docker-credential-<name>` program speaking get/store/erase on stdin/stdout.

import { childProcess } from '../util/lazy-modules.js';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { KilnError, errorMessage } from '../util/errors.js';
import { DOCKER_HUB, normalizeRegistryHost } from './reference.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth refresh token (docker's `identitytoken`): traded at the token server. */
  identityToken?: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  [k: string]: unknown;
}

export interface DockerConfigFile {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

/** Docker Hub's credentials live under this legacy key. */
const HUB_KEY = 'https://index.docker.io/v1/';

export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG || join(homedir(), '.docker');
}

function configPath(dir: string): string {
  return join(dir, 'config.json');
}

export async function readDockerConfig(dir = dockerConfigDir()): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await readFile(configPath(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new KilnError(`cannot read ${configPath(dir)}: ${errorMessage(err)}`);
  }
  try {
    return JSON.parse(text) as DockerConfigFile;
  } catch (err) {
    throw new KilnError(`${configPath(dir)}: not valid JSON: ${errorMessage(err)}`);
  }
}

async function writeDockerConfig(dir: string, cfg: DockerConfigFile): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.config.json.${process.pid}.${randomBytes(4).toString('hex')}`);
  await writeFile(tmp, JSON.stringify(cfg, null, '\t') + '\n', { mode: 0o600 });
  await rename(tmp, configPath(dir));
}

/** The key config.json uses for a registry (docker's legacy URL for Docker Hub). */
function configKey(registry: string): string {
  return registry === DOCKER_HUB ? HUB_KEY : registry;
}

/** Entries in `auths` may be written as URLs (`https://host/v1/`): compare by host. */
function findAuthEntry(auths: Record<string, AuthEntry>, registry: string): AuthEntry | undefined {
  if (auths[configKey(registry)]) return auths[configKey(registry)];
  for (const [k, v] of Object.entries(auths)) if (normalizeRegistryHost(k) === registry) return v;
  return undefined;
}

function helperFor(cfg: DockerConfigFile, registry: string): string | undefined {
  const helpers = cfg.credHelpers ?? {};
  for (const [k, v] of Object.entries(helpers)) if (normalizeRegistryHost(k) === registry) return v;
  return cfg.credsStore || undefined;
}

/** Credentials for a registry host (normalised: `docker.io`, `host:port`), or undefined for anonymous. */
export async function lookupCredentials(registry: string, dir = dockerConfigDir()): Promise<Credentials | undefined> {
  const cfg = await readDockerConfig(dir);
  const helper = helperFor(cfg, registry);
  if (helper) {
    const got = await runHelper(helper, 'get', configKey(registry));
    if (got === undefined) return undefined;
    const r = JSON.parse(got) as { Username?: string; Secret?: string };
    if (!r.Secret) return undefined;
    // Helpers mark an identity token with this username, as docker does.
    if (r.Username === '<token>') return { identityToken: r.Secret };
    return { username: r.Username, password: r.Secret };
  }
  const entry = cfg.auths ? findAuthEntry(cfg.auths, registry) : undefined;
  if (!entry) return undefined;
  if (entry.identitytoken) return { identityToken: entry.identitytoken, username: entry.username };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new KilnError(`${configPath(dir)}: the "auth" entry for ${registry} is not base64 of user:password`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password };
  return undefined;
}

/** Saves credentials where docker would: the host's helper if one is configured, else `auths`. */
export async function saveCredentials(registry: string, creds: { username: string; password: string }, dir = dockerConfigDir()): Promise<string> {
  const cfg = await readDockerConfig(dir);
  const helper = helperFor(cfg, registry);
  if (helper) {
    await runHelper(helper, 'store', JSON.stringify({ ServerURL: configKey(registry), Username: creds.username, Secret: creds.password }));
    // docker keeps an empty entry so `docker login` lists the host.
    cfg.auths = { ...cfg.auths, [configKey(registry)]: {} };
  } else {
    const auth = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    cfg.auths = { ...cfg.auths, [configKey(registry)]: { auth } };
  }
  await writeDockerConfig(dir, cfg);
  return configPath(dir);
}

/** Removes stored credentials; false when there were none. */
export async function removeCredentials(registry: string, dir = dockerConfigDir()): Promise<boolean> {
  const cfg = await readDockerConfig(dir);
  let found = false;
  const helper = helperFor(cfg, registry);
  if (helper) {
    try {
      await runHelper(helper, 'erase', configKey(registry));
      found = true;
    } catch {
      // erase of an unknown host fails in most helpers; not an error for logout.
    }
  }
  for (const k of Object.keys(cfg.auths ?? {})) {
    if (normalizeRegistryHost(k) === registry) {
      delete cfg.auths![k];
      found = true;
    }
  }
  if (found) await writeDockerConfig(dir, cfg);
  return found;
}

/**
 * Runs `docker-credential-<name> <action>` with `input` on stdin. `get` of an unknown host
 * returns undefined (helpers say "credentials not found in native keychain").
 */
async function runHelper(name: string, action: 'get' | 'store' | 'erase', input: string): Promise<string | undefined> {
  const program = `docker-credential-${name}`;
  const { code, stdout, stderr, spawnError } = await new Promise<{ code: number; stdout: string; stderr: string; spawnError?: Error }>(
    (resolve) => {
      const child = childProcess().spawn(program, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', (e) => resolve({ code: -1, stdout: out, stderr: err, spawnError: e }));
      child.on('close', (c) => resolve({ code: c ?? -1, stdout: out, stderr: err }));
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    },
  );
  if (spawnError) throw new KilnError(`credential helper ${program} could not run: ${spawnError.message}`);
  if (code !== 0) {
    const msg = (stdout + stderr).trim();
    if (action === 'get' && /credentials not found/i.test(msg)) return undefined;
    throw new KilnError(`credential helper ${program} ${action} failed: ${msg || `exit ${code}`}`);
  }
  return stdout;
}
