// RUN --mount=type=ssh gets a socket of its own that forwards to the user's agent, not the
// agent's socket itself: the step sees the mount's mode, uid and gid, as BuildKit gives them,
// and the host socket's permissions are never touched.

import type { Socket } from 'node:net';
import { net } from '../../util/lazy-modules.js';
import { chmod, chown } from 'node:fs/promises';
import { KilnError } from '../../util/errors.js';

export interface AgentProxy {
  path: string;
  close(): void;
}

/** Longest unix socket path Linux takes (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107;

export async function startAgentProxy(agent: string, path: string, owner: { mode: number; uid: number; gid: number }): Promise<AgentProxy> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new KilnError(`RUN --mount=type=ssh: the store path is too long for a unix socket (${path}); use a shorter --root`);
  }
  const open = new Set<Socket>();
  const track = (s: Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  };
  const server = net().createServer((client) => {
    const upstream = net().connect(agent);
    track(client);
    track(upstream);
    // Either side failing ends the pair; the step's ssh client sees a closed connection.
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  try {
    await chown(path, owner.uid, owner.gid);
    await chmod(path, owner.mode);
  } catch (err) {
    server.close();
    throw err;
  }
  return {
    path,
    close() {
      server.close();
      for (const s of open) s.destroy();
    },
  };
}
