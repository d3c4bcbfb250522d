// The agent socket a RUN --mount=type=ssh step (or git, for an ssh remote) talks to. kiln serves
// it itself rather than handing out the user's agent socket:
// - it is read-only, as BuildKit's: a step may list the keys and have data signed, but its
//   requests to add, remove or lock keys, and extensions, get a failure and never reach the
//   user's agent (a step must not change the host);
// - keys from --ssh ID=KEYFILE are answered from memory;
// - the socket gets the mount's mode, uid and gid, and the user's socket is never touched.

import type { Server, Socket } from 'node:net';
import { chmod, chown } from 'node:fs/promises';
import { net } from '../../util/lazy-modules.js';
import { KilnError } from '../../util/errors.js';
import type { AgentSource } from './source.js';
import type { AgentKey } from './keys.js';
import {
  AGENT_FAILURE, AGENT_IDENTITIES_ANSWER, AGENT_SIGN_RESPONSE, AGENTC_REQUEST_IDENTITIES, AGENTC_SIGN_REQUEST,
  FrameSplitter, WireReader, frame, sshString, uint32,
} from './wire.js';

export interface AgentServer {
  path: string;
  close(): void;
}

/** Longest unix socket path Linux takes (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107;

const FAILURE = frame(AGENT_FAILURE);

/** Answers one request (a message without its length prefix) with a whole framed reply. */
type Answer = (request: Buffer) => Promise<Buffer>;

export async function serveAgent(source: AgentSource, path: string, owner: { mode: number; uid: number; gid: number }): Promise<AgentServer> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new KilnError(`ssh agent: the path is too long for a unix socket (${path}); use a shorter --root`);
  }
  const open = new Set<Socket>();
  const track = (s: Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  };
  const server: Server = net().createServer((client) => {
    track(client);
    const answer = source.kind === 'keys' ? keyringAnswer(source.keys) : upstreamAnswer(source.path, client, track);
    serveConnection(client, answer);
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

/** Requests are answered one at a time, in order, as the protocol has it. */
function serveConnection(client: Socket, answer: Answer): void {
  const splitter = new FrameSplitter();
  let queue = Promise.resolve();
  client.on('error', () => client.destroy());
  client.on('data', (chunk: Buffer) => {
    let requests: Buffer[];
    try {
      requests = splitter.push(chunk);
    } catch {
      client.destroy();
      return;
    }
    for (const request of requests) {
      queue = queue.then(async () => {
        const reply = await answer(request).catch(() => FAILURE);
        if (!client.destroyed) client.write(reply);
      });
    }
  });
}

function keyringAnswer(keys: AgentKey[]): Answer {
  return async (request) => {
    if (request[0] === AGENTC_REQUEST_IDENTITIES) {
      return frame(AGENT_IDENTITIES_ANSWER, uint32(keys.length), ...keys.flatMap((k) => [sshString(k.blob), sshString(k.comment)]));
    }
    if (request[0] === AGENTC_SIGN_REQUEST) {
      const r = new WireReader(request.subarray(1), 'sign request');
      const blob = r.bytes();
      const data = r.bytes();
      const flags = r.uint32();
      const key = keys.find((k) => k.blob.equals(blob));
      return key ? frame(AGENT_SIGN_RESPONSE, sshString(key.sign(data, flags))) : FAILURE;
    }
    return FAILURE;
  };
}

/**
 * Passes listing and signing on to the user's agent over one connection of its own, opened on
 * the first such request; everything else is refused here.
 */
function upstreamAnswer(agentPath: string, client: Socket, track: (s: Socket) => void): Answer {
  let upstream: Socket | undefined;
  const waiting: Array<(reply: Buffer | undefined) => void> = [];
  client.on('close', () => upstream?.destroy());
  const connect = () => {
    const s = net().connect(agentPath);
    track(s);
    const splitter = new FrameSplitter();
    const fail = () => {
      if (upstream === s) upstream = undefined;
      s.destroy();
      for (const w of waiting.splice(0)) w(undefined);
    };
    s.on('data', (chunk: Buffer) => {
      let replies: Buffer[];
      try {
        replies = splitter.push(chunk);
      } catch {
        fail();
        return;
      }
      for (const reply of replies) waiting.shift()?.(Buffer.concat([uint32(reply.length), reply]));
    });
    s.on('error', fail);
    s.on('close', fail);
    return s;
  };
  return (request) => {
    if (request[0] !== AGENTC_REQUEST_IDENTITIES && request[0] !== AGENTC_SIGN_REQUEST) return Promise.resolve(FAILURE);
    upstream ??= connect();
    const s = upstream;
    return new Promise<Buffer>((resolve) => {
      waiting.push((reply) => resolve(reply ?? FAILURE));
      s.write(Buffer.concat([uint32(request.length), request]));
    });
  };
}
