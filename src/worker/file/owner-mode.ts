// --chown and --chmod as BuildKit applies them.
// Owners: names are looked up in the DESTINATION filesystem's /etc/passwd and /etc/group (read
// through the rootfs view, so a symlinked /etc stays inside the image). Without a group, a user
// named takes its passwd entry's group and a number is its own group (BuildKit's rule; Docker's
// documentation gives the classic builder's, the user's number for both); an empty user is root.
// A name found nowhere (or no /etc/passwd at all, as in FROM scratch) falls back as in BuildKit:
// a user to root, a group to the user's group. Dockerfiles that build with BuildKit rely on it
// (`COPY --chown=root:root` onto scratch); --chown says so in the step's output, since the user
// asked for that owner by name. WORKDIR's folders for the current USER fall back silently.
// Modes: octal sets the permission bits outright; symbolic clauses (`u+x,g-w`, `a=rX`, `g=u`)
// apply to each entry's own mode, where `X` means "if a directory or already executable".

import type { Chown } from '../../graph/ops.js';
import { KilnError } from '../../util/errors.js';
import type { RootfsView } from '../../store/rootfs-view.js';

export interface Owner {
  uid: number;
  gid: number;
}

function parseId(s: string): number | undefined {
  return /^\d+$/.test(s) ? Number(s) : undefined;
}

/** The numeric fields of the first line of an /etc/passwd or /etc/group naming `name`. */
function lookup(file: string | undefined, name: string): number[] | undefined {
  if (!file) return undefined;
  for (const line of file.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length > 2) {
      const ids = f.slice(2, 4).map((x) => parseId(x.trim()));
      if (ids[0] !== undefined) return ids as number[];
    }
  }
  return undefined;
}

/** Told, in words, of a name the image's /etc/passwd or /etc/group lacks, and of the fallback. */
export type OnMissingName = (message: string) => void;

export async function resolveChown(chown: Chown, dest: RootfsView, onMissing?: OnMissingName): Promise<Owner> {
  let uid = 0;
  let gid = 0;
  const userId = parseId(chown.user);
  if (userId !== undefined) uid = gid = userId;
  else if (chown.user !== '') {
    const passwd = (await dest.readFileIfExists('/etc/passwd'))?.toString('utf8');
    const found = lookup(passwd, chown.user);
    if (found === undefined) onMissing?.(`--chown: no user ${JSON.stringify(chown.user)} in the image's /etc/passwd; owner 0 (root), as BuildKit does`);
    if (found) {
      uid = found[0]!;
      gid = found[1] ?? uid;
    }
  }
  if (chown.group === undefined || chown.group === '') return { uid, gid };
  const groupId = parseId(chown.group);
  if (groupId !== undefined) return { uid, gid: groupId };
  const group = (await dest.readFileIfExists('/etc/group'))?.toString('utf8');
  const found = lookup(group, chown.group);
  if (found === undefined) {
    onMissing?.(`--chown: no group ${JSON.stringify(chown.group)} in the image's /etc/group; group ${gid}, as BuildKit does`);
    return { uid, gid };
  }
  return { uid, gid: found[0]! };
}

/** A parsed --chmod: maps an entry's current permission bits (and kind) to new ones. */
export type ModeFn = (mode: number, isDir: boolean) => number;

const WHO: Record<string, number> = { u: 0o4700, g: 0o2070, o: 0o1007, a: 0o7777 };

export function parseChmod(spec: string): ModeFn {
  const octal = /^(?:0o)?([0-7]{1,4})$/.exec(spec);
  if (octal) {
    const bits = parseInt(octal[1]!, 8);
    return () => bits;
  }
  const clauses = spec.split(',').map((c) => {
    const m = /^([ugoa]*)((?:[-+=][rwxXstugo]*)+)$/.exec(c);
    if (!m) throw new KilnError(`invalid --chmod ${JSON.stringify(spec)}: expected octal or symbolic mode (u+x,g-w)`);
    const who = m[1] === '' ? 'a' : m[1]!;
    const ops = [...m[2]!.matchAll(/([-+=])([rwxXstugo]*)/g)].map((o) => ({ op: o[1]!, perms: o[2]! }));
    return { who, ops };
  });
  return (mode, isDir) => {
    let cur = mode & 0o7777;
    for (const { who, ops } of clauses) {
      let mask = 0;
      for (const w of who) mask |= WHO[w]!;
      for (const { op, perms } of ops) {
        let bits = 0;
        for (const p of perms) {
          if (p === 'r') bits |= 0o444;
          else if (p === 'w') bits |= 0o222;
          else if (p === 'x') bits |= 0o111;
          else if (p === 'X') {
            if (isDir || (cur & 0o111) !== 0) bits |= 0o111;
          } else if (p === 's') bits |= 0o6000;
          else if (p === 't') bits |= 0o1000;
          else {
            // Copy another class's bits: u, g or o, spread to every class then masked.
            const shift = p === 'u' ? 6 : p === 'g' ? 3 : 0;
            const v = (cur >> shift) & 7;
            bits |= (v << 6) | (v << 3) | v;
          }
        }
        bits &= mask;
        if (op === '+') cur |= bits;
        else if (op === '-') cur &= ~bits;
        else cur = (cur & ~mask) | bits;
      }
    }
    return cur & 0o7777;
  };
}
