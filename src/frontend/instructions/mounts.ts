// `RUN --mount=type=...,key=value`: option names, aliases and literal values checked here;
// defaults are applied by the converter after variable expansion.

import { ramInBytes } from '../../util/size.js';
import type { RawMount } from './types.js';
import { splitCsv, isLiteral } from './values.js';

export class MountError extends Error {}

const aliases: Record<string, string> = {
  dst: 'target', destination: 'target', src: 'source', ro: 'readonly', rw: 'readwrite',
};

const allowed: Record<RawMount['type'], string[]> = {
  bind: ['target', 'source', 'from', 'readonly', 'readwrite'],
  cache: ['target', 'source', 'from', 'readonly', 'readwrite', 'id', 'sharing', 'mode', 'uid', 'gid'],
  tmpfs: ['target', 'size'],
  secret: ['target', 'id', 'env', 'required', 'mode', 'uid', 'gid'],
  ssh: ['target', 'id', 'required', 'mode', 'uid', 'gid'],
};
const boolKeys = new Set(['readonly', 'readwrite', 'required']);

export function parseMount(text: string): RawMount {
  let fields: string[];
  try {
    fields = splitCsv(text);
  } catch (e) {
    throw new MountError(`invalid --mount: ${(e as Error).message}`);
  }
  const options = new Map<string, string>();
  let type: RawMount['type'] = 'bind';
  const seen: [string, string, string][] = [];
  for (const field of fields) {
    const eq = field.indexOf('=');
    const rawKey = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : field.slice(eq + 1);
    if (rawKey === '') continue;
    if (rawKey === 'type') {
      if (!value || !(value in allowed)) throw new MountError(`unsupported mount type "${value ?? ''}" (use bind, cache, tmpfs, secret or ssh)`);
      type = value as RawMount['type'];
      continue;
    }
    seen.push([rawKey, aliases[rawKey] ?? rawKey, field]);
    void value;
  }
  for (const [rawKey, key, field] of seen) {
    const eq = field.indexOf('=');
    let value = eq < 0 ? undefined : field.slice(eq + 1);
    if (!allowed[type].includes(key)) throw new MountError(`unexpected key "${rawKey}" for mount type=${type} in "${text}"`);
    if (boolKeys.has(key)) {
      value = value === undefined ? 'true' : value.toLowerCase();
      if (isLiteral(value) && value !== 'true' && value !== 'false') throw new MountError(`invalid value for ${rawKey}: "${value}" (true or false)`);
      if (key === 'readwrite') {
        options.set('readonly', value === 'true' ? 'false' : 'true');
        continue;
      }
    } else if (value === undefined) {
      throw new MountError(`mount option "${rawKey}" needs a value (${rawKey}=...)`);
    }
    if (isLiteral(value)) checkMountValue(key, value, rawKey);
    options.set(key, value);
  }
  if ((type === 'bind' || type === 'cache' || type === 'tmpfs') && !options.get('target')) {
    throw new MountError(`mount type=${type} requires a target (target=/path)`);
  }
  if (type === 'secret' && !options.get('id') && !options.get('target')) {
    throw new MountError('mount type=secret requires an id or a target');
  }
  return { type, options, text };
}

/** Checks one option's final value; the converter calls it again after expansion. */
export function checkMountValue(key: string, value: string, name = key): void {
  switch (key) {
    case 'sharing':
      if (!['shared', 'private', 'locked'].includes(value)) throw new MountError(`invalid sharing "${value}" (shared, private or locked)`);
      break;
    case 'mode':
      if (!/^[0-7]+$/.test(value)) throw new MountError(`invalid mode "${value}": expected an octal number`);
      break;
    case 'uid':
    case 'gid':
      if (!/^\d+$/.test(value)) throw new MountError(`invalid ${name} "${value}": expected a number`);
      break;
    case 'size':
      parseSize(value);
      break;
  }
}

/** `64m`, `1g`, `1024` (bytes; binary units as docker's RAMInBytes). */
export function parseSize(v: string): number {
  const bytes = ramInBytes(v);
  if (bytes === undefined) throw new MountError(`invalid size "${v}": expected bytes or a number with k, m, g suffix`);
  return bytes;
}
