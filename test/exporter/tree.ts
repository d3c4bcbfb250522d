// Filesystem trees as comparable data: path -> type, mode, owner, content digest, link target.
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: string;
  owner: string;
  content?: string;
  target?: string;
}

export async function readTree(root: string): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(root, r);
      const st = await lstat(p);
      const e: TreeEntry = {
        type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other',
        mode: (st.mode & 0o7777).toString(8),
        owner: `${st.uid}:${st.gid}`,
      };
      if (st.isFile()) e.content = createHash('sha256').update(await readFile(p)).digest('hex').slice(0, 16);
      if (st.isSymbolicLink()) {
        e.target = await readlink(p);
        delete (e as Partial<TreeEntry>).mode; // symlink modes are not portable
      }
      out[r] = e;
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}

/** Differences as readable lines (empty when the trees match). */
export function diffTrees(actual: Record<string, TreeEntry>, expected: Record<string, TreeEntry>): string[] {
  const lines: string[] = [];
  for (const k of new Set([...Object.keys(actual), ...Object.keys(expected)])) {
    const a = actual[k];
    const e = expected[k];
    if (!a) lines.push(`missing ${k}`);
    else if (!e) lines.push(`unexpected ${k}`);
    else if (JSON.stringify(a) !== JSON.stringify(e)) lines.push(`${k}: got ${JSON.stringify(a)}, want ${JSON.stringify(e)}`);
  }
  return lines.slice(0, 30);
}
