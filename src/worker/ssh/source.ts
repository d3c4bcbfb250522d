// What an --ssh ID stands for, as buildx reads `--ssh ID=PATH[,PATH...]`: one ssh-agent socket,
// or private key files that kiln's own agent holds. Read when the flag is, so a bad path fails
// the build before any step runs.

import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { KeyFileError, parsePrivateKey, type AgentKey } from './keys.js';

export type AgentSource =
  | { kind: 'socket'; path: string }
  | { kind: 'keys'; keys: AgentKey[] };

/** A key file larger than this is not a key (buildx reads no more either). */
const MAX_KEY_FILE = 100 * 1024;

/** The agent `paths` name. Throws an Error whose message names the path at fault. */
export function agentSourceFor(paths: string[]): AgentSource {
  let socket: string | undefined;
  const keys: AgentKey[] = [];
  for (const given of paths) {
    const path = resolve(given);
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch (err) {
      throw new Error(`${given}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or socket' : (err as Error).message}`);
    }
    if (st.isSocket()) {
      if (socket || keys.length) throw new Error('give one agent socket, or key files, not both');
      socket = path;
      continue;
    }
    if (socket) throw new Error('give one agent socket, or key files, not both');
    if (!st.isFile() || st.size > MAX_KEY_FILE) throw new Error(`${given}: not an agent socket or a private key file`);
    try {
      keys.push(parsePrivateKey(readFileSync(path, 'utf8')));
    } catch (err) {
      if (!(err instanceof KeyFileError)) throw new Error(`${given}: ${(err as Error).message}`);
      const advice = /passphrase/.test(err.message) ? ': add it to an ssh-agent (ssh-add) and give the agent (--ssh ID or ID=$SSH_AUTH_SOCK)' : '';
      throw new Error(`${given}: ${err.message}${advice}`);
    }
  }
  return socket ? { kind: 'socket', path: socket } : { kind: 'keys', keys };
}
