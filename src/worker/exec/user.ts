// USER as Docker resolves it: a name or uid, optionally `:group`, looked up in the image's
// /etc/passwd and /etc/group (read through the layers, nothing mounted).

import { KilnError } from '../../util/errors.js';
import { readImageFile } from './image-file.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups (from /etc/group membership, when no group was named). */
  groups: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const isNumber = (s: string) => /^\d+$/.test(s);

function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || !isNumber(f[2]!) || !isNumber(f[3]!)) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
  }
  return out;
}

function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || !isNumber(f[2]!)) continue;
    out.push({ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(',').filter(Boolean) });
  }
  return out;
}

/** `layers`: the image's layer folders, bottom to top. */
export async function resolveUser(spec: string, layers: readonly string[]): Promise<ResolvedUser> {
  // No USER means uid 0 even without an /etc/passwd (scratch images), as runc does.
  const [userPart = '', groupPart] = (spec || '0').split(':', 2) as [string, string | undefined];
  const passwd = parsePasswd((await readImageFile(layers, '/etc/passwd'))?.toString('utf8') ?? '');
  const groups = parseGroup((await readImageFile(layers, '/etc/group'))?.toString('utf8') ?? '');

  const byName = passwd.find((p) => p.name === userPart);
  const pw = byName ?? (isNumber(userPart) ? passwd.find((p) => p.uid === Number(userPart)) : undefined);
  if (!pw && !isNumber(userPart)) {
    throw new KilnError(`unable to find user ${userPart}: no matching entries in passwd file`);
  }
  const uid = pw ? pw.uid : Number(userPart);
  let gid = pw ? pw.gid : 0;
  let supplementary: number[] = [];
  if (groupPart !== undefined && groupPart !== '') {
    if (isNumber(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw new KilnError(`unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
  } else if (pw) {
    supplementary = groups.filter((g) => g.members.includes(pw.name) && g.gid !== gid).map((g) => g.gid);
  }
  if (uid > 0xfffffffe || gid > 0xfffffffe) throw new KilnError(`user ${spec}: id out of range`);
  return { uid, gid, groups: [...new Set(supplementary)], home: pw?.home || '/' };
}

/** Results per stack of layers: a committed snapshot's files never change, so they hold for the process's life. */
const resolvedUsers = new Map<string, ResolvedUser>();
const MAX_RESOLVED_USERS = 256;

/** resolveUser, answered from memory for a stack and USER seen before (every RUN of a stage asks again). */
export async function resolveUserCached(spec: string, layers: readonly string[]): Promise<ResolvedUser> {
  const key = `${spec}\0${layers.join('\0')}`;
  const hit = resolvedUsers.get(key);
  if (hit) return { ...hit, groups: [...hit.groups] };
  const user = await resolveUser(spec, layers);
  if (resolvedUsers.size >= MAX_RESOLVED_USERS) resolvedUsers.clear();
  resolvedUsers.set(key, { ...user, groups: [...user.groups] });
  return user;
}
