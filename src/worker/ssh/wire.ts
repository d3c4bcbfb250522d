// The ssh-agent protocol's framing and SSH's wire types (RFC 4251 §5, draft-miller-ssh-agent):
// every message is a uint32 length, then a type byte and its body.

export const AGENT_FAILURE = 5;
export const AGENTC_REQUEST_IDENTITIES = 11;
export const AGENT_IDENTITIES_ANSWER = 12;
export const AGENTC_SIGN_REQUEST = 13;
export const AGENT_SIGN_RESPONSE = 14;
/** Sign-request flags asking an RSA key for SHA-2 signatures instead of SHA-1. */
export const RSA_SHA2_256 = 2;
export const RSA_SHA2_512 = 4;

/** OpenSSH's own agent refuses messages above this; so does kiln's, rather than buffer without end. */
export const MAX_MESSAGE = 256 * 1024;

export function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

export function sshString(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([uint32(body.length), body]);
}

/** A non-negative integer as an SSH mpint: big-endian, no leading zeros, a zero byte before a high bit. */
export function mpint(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length && magnitude[i] === 0) i++;
  const trimmed = magnitude.subarray(i);
  return sshString(trimmed.length > 0 && trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

/** One agent message: its length prefix, type and body. */
export function frame(type: number, ...body: Buffer[]): Buffer {
  const payload = Buffer.concat([Buffer.from([type]), ...body]);
  return Buffer.concat([uint32(payload.length), payload]);
}

export class WireReader {
  private at = 0;
  constructor(private readonly buf: Buffer, private readonly what: string) {}

  uint32(): number {
    if (this.at + 4 > this.buf.length) throw new Error(`${this.what}: truncated`);
    const n = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return n;
  }

  bytes(): Buffer {
    const n = this.uint32();
    if (this.at + n > this.buf.length) throw new Error(`${this.what}: truncated`);
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }

  text(): string {
    return this.bytes().toString('utf8');
  }

  /** An mpint's magnitude, without the sign byte. */
  unsigned(): Buffer {
    const b = this.bytes();
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    return b.subarray(i);
  }
}

/**
 * Splits a byte stream into agent messages: push() what arrives, get back the whole messages it
 * completes (each without its length prefix). A length above MAX_MESSAGE throws.
 */
export class FrameSplitter {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: Buffer[] = [];
    while (this.pending.length >= 4) {
      const n = this.pending.readUInt32BE(0);
      if (n === 0 || n > MAX_MESSAGE) throw new Error(`agent message of ${n} bytes`);
      if (this.pending.length < 4 + n) break;
      out.push(this.pending.subarray(4, 4 + n));
      this.pending = this.pending.subarray(4 + n);
    }
    return out;
  }
}
