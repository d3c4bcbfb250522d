// Private key files given to --ssh ID=KEYFILE, held in memory by kiln's agent as BuildKit's
// client holds them: OpenSSH's own format (unencrypted) and the PEM forms OpenSSL writes (PKCS#1,
// SEC1, PKCS#8), for Ed25519, RSA and ECDSA keys. A key with a passphrase is refused: nobody is
// there to type it, and an agent the user unlocked already does the job.

import { createPrivateKey, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { RSA_SHA2_256, RSA_SHA2_512, WireReader, mpint, sshString } from './wire.js';

export interface AgentKey {
  /** The public key in SSH's wire form, as `ssh-add -L` prints it in base64. */
  blob: Buffer;
  comment: string;
  /** An SSH signature (algorithm name and signature) of `data`; `flags` choose RSA's hash. */
  sign(data: Buffer, flags: number): Buffer;
}

/** Why a file is not a key kiln can use; the caller names the file and the flag. */
export class KeyFileError extends Error {}

const OPENSSH_BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const OPENSSH_END = '-----END OPENSSH PRIVATE KEY-----';
const OPENSSH_MAGIC = Buffer.from('openssh-key-v1\0');

const CURVES: Record<string, { name: string; jwk: string; hash: string; size: number }> = {
  nistp256: { name: 'nistp256', jwk: 'P-256', hash: 'sha256', size: 32 },
  nistp384: { name: 'nistp384', jwk: 'P-384', hash: 'sha384', size: 48 },
  nistp521: { name: 'nistp521', jwk: 'P-521', hash: 'sha512', size: 66 },
};
const CURVE_BY_JWK = new Map(Object.values(CURVES).map((c) => [c.jwk, c]));

const b64url = (b: Buffer) => b.toString('base64url');
const fromB64url = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');

function leftPad(b: Buffer, size: number): Buffer {
  return b.length >= size ? b.subarray(b.length - size) : Buffer.concat([Buffer.alloc(size - b.length), b]);
}

function toBigInt(b: Buffer): bigint {
  return b.length ? BigInt(`0x${b.toString('hex')}`) : 0n;
}

function fromBigInt(n: bigint): Buffer {
  const hex = n.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
}

/** The key in `text` (a file's contents). Throws KeyFileError for what is not a usable key. */
export function parsePrivateKey(text: string): AgentKey {
  const start = text.indexOf(OPENSSH_BEGIN);
  if (start >= 0) return parseOpenSsh(text.slice(start + OPENSSH_BEGIN.length, text.indexOf(OPENSSH_END, start)));
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(text)) {
    throw new KeyFileError('the key is protected by a passphrase');
  }
  if (!/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(text)) throw new KeyFileError('not a private key (OpenSSH or PEM)');
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch (err) {
    throw new KeyFileError(`not a readable private key (${(err as Error).message})`);
  }
  return fromKeyObject(key, '');
}

function parseOpenSsh(body: string): AgentKey {
  const raw = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  if (!raw.subarray(0, OPENSSH_MAGIC.length).equals(OPENSSH_MAGIC)) throw new KeyFileError('not an OpenSSH private key');
  try {
    const r = new WireReader(raw.subarray(OPENSSH_MAGIC.length), 'OpenSSH private key');
    const cipher = r.text();
    r.text(); // kdf name
    r.bytes(); // kdf options
    if (cipher !== 'none') throw new KeyFileError('the key is protected by a passphrase');
    const count = r.uint32();
    if (count !== 1) throw new KeyFileError(`the file holds ${count} keys; give one key per file`);
    const blob = r.bytes();
    const priv = new WireReader(r.bytes(), 'OpenSSH private key');
    if (priv.uint32() !== priv.uint32()) throw new KeyFileError('the key is protected by a passphrase');
    const type = priv.text();
    let jwk: JsonWebKey;
    if (type === 'ssh-ed25519') {
      const pub = priv.bytes();
      const secret = priv.bytes();
      jwk = { kty: 'OKP', crv: 'Ed25519', x: b64url(pub), d: b64url(secret.subarray(0, 32)) };
    } else if (type === 'ssh-rsa') {
      const [n, e, d, qi, p, q] = [priv.unsigned(), priv.unsigned(), priv.unsigned(), priv.unsigned(), priv.unsigned(), priv.unsigned()];
      const dBig = toBigInt(d);
      jwk = {
        kty: 'RSA', n: b64url(n), e: b64url(e), d: b64url(d), p: b64url(p), q: b64url(q), qi: b64url(qi),
        dp: b64url(fromBigInt(dBig % (toBigInt(p) - 1n))), dq: b64url(fromBigInt(dBig % (toBigInt(q) - 1n))),
      };
    } else if (type.startsWith('ecdsa-sha2-')) {
      const curve = CURVES[priv.text()];
      if (!curve) throw new KeyFileError(`unsupported curve in ${type}`);
      const point = priv.bytes();
      const d = priv.unsigned();
      if (point[0] !== 4 || point.length !== 1 + 2 * curve.size) throw new KeyFileError('a compressed or malformed ECDSA public point');
      jwk = {
        kty: 'EC', crv: curve.jwk, x: b64url(point.subarray(1, 1 + curve.size)),
        y: b64url(point.subarray(1 + curve.size)), d: b64url(leftPad(d, curve.size)),
      };
    } else {
      throw new KeyFileError(`unsupported key type ${type} (kiln takes Ed25519, RSA and ECDSA keys)`);
    }
    const comment = priv.text();
    const key = createPrivateKey({ key: jwk, format: 'jwk' });
    const made = fromKeyObject(key, comment);
    // The file's public half must be the private half's: a mismatch is a damaged file.
    if (!made.blob.equals(blob)) throw new KeyFileError('its public and private halves do not match');
    return made;
  } catch (err) {
    if (err instanceof KeyFileError) throw err;
    throw new KeyFileError(`a damaged OpenSSH private key (${(err as Error).message})`);
  }
}

function fromKeyObject(key: KeyObject, comment: string): AgentKey {
  const jwk = key.export({ format: 'jwk' });
  if (key.asymmetricKeyType === 'ed25519') {
    return {
      blob: Buffer.concat([sshString('ssh-ed25519'), sshString(fromB64url(jwk.x))]),
      comment,
      sign: (data) => Buffer.concat([sshString('ssh-ed25519'), sshString(sign(null, data, key))]),
    };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return {
      blob: Buffer.concat([sshString('ssh-rsa'), mpint(fromB64url(jwk.e)), mpint(fromB64url(jwk.n))]),
      comment,
      sign(data, flags) {
        const [name, hash] = flags & RSA_SHA2_512 ? ['rsa-sha2-512', 'sha512'] : flags & RSA_SHA2_256 ? ['rsa-sha2-256', 'sha256'] : ['ssh-rsa', 'sha1'];
        return Buffer.concat([sshString(name!), sshString(sign(hash!, data, key))]);
      },
    };
  }
  const curve = key.asymmetricKeyType === 'ec' ? CURVE_BY_JWK.get(jwk.crv ?? '') : undefined;
  if (curve) {
    const name = `ecdsa-sha2-${curve.name}`;
    const point = Buffer.concat([Buffer.from([4]), leftPad(fromB64url(jwk.x), curve.size), leftPad(fromB64url(jwk.y), curve.size)]);
    return {
      blob: Buffer.concat([sshString(name), sshString(curve.name), sshString(point)]),
      comment,
      sign(data) {
        const rs = sign(curve.hash, data, { key, dsaEncoding: 'ieee-p1363' });
        const half = rs.length / 2;
        const inner = Buffer.concat([mpint(rs.subarray(0, half)), mpint(rs.subarray(half))]);
        return Buffer.concat([sshString(name), sshString(inner)]);
      },
    };
  }
  throw new KeyFileError(`unsupported key type ${key.asymmetricKeyType ?? 'unknown'}${jwk.crv ? ` (${jwk.crv})` : ''} (kiln takes Ed25519, RSA and ECDSA P-256, P-384 and P-521 keys)`);
}
