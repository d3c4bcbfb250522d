// Store damage checks for the crash tests: `kiln store verify` when the CLI has it, and the
// same checks made here against the store layout (DESIGN.md "The store") either way, so a
// verify command that says yes too easily cannot hide damage.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runKiln } from '../helpers/kiln.js';

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function blobHex(root: string, hex: string): Promise<string> {
  return createHash('sha256').update(await readFile(join(root, 'blobs', 'sha256', hex))).digest('hex');
}

/** Every blob matches its name, every snapshot has metadata naming it, every ref and cache record points at what exists. */
export async function checkStoreLayout(root: string): Promise<void> {
  const blobs = new Set(await list(join(root, 'blobs', 'sha256')));
  for (const hex of blobs) assert.equal(await blobHex(root, hex), hex, `blob ${hex} does not match its digest`);

  const snapshots = new Set(await list(join(root, 'snapshots')));
  for (const id of snapshots) {
    const meta = JSON.parse(await readFile(join(root, 'snapshots', id, 'meta.json'), 'utf8')) as { id: string };
    assert.equal(meta.id, id, `snapshot ${id}: metadata names ${meta.id}`);
    assert.ok((await stat(join(root, 'snapshots', id, 'fs'))).isDirectory(), `snapshot ${id} has no fs/`);
  }

  for (const name of await list(join(root, 'refs'))) {
    const ref = JSON.parse(await readFile(join(root, 'refs', name), 'utf8')) as { digest: string };
    const hex = ref.digest.replace(/^sha256:/, '');
    assert.ok(blobs.has(hex), `ref ${decodeURIComponent(name)} points at a missing manifest`);
    const manifest = JSON.parse(await readFile(join(root, 'blobs', 'sha256', hex), 'utf8')) as {
      config?: { digest: string };
      layers?: { digest: string }[];
      manifests?: { digest: string }[];
    };
    for (const d of [manifest.config, ...(manifest.layers ?? []), ...(manifest.manifests ?? [])]) {
      if (d) assert.ok(blobs.has(d.digest.replace(/^sha256:/, '')), `ref ${decodeURIComponent(name)}: blob ${d.digest} missing`);
    }
  }

  for (const name of await list(join(root, 'cache'))) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    const rec = JSON.parse(await readFile(join(root, 'cache', name), 'utf8')) as { snapshot: string | null };
    // A record may outlive a pruned snapshot (that is a miss); a crash must not leave one for a snapshot never committed.
    if (rec.snapshot !== null) assert.ok(snapshots.has(rec.snapshot), `cache record ${name} points at missing snapshot ${rec.snapshot}`);
  }
}

/** `kiln store verify` when it exists (it must pass), then the layout checks above. */
export async function verifyStore(root: string): Promise<{ usedCli: boolean }> {
  const r = await runKiln(['store', 'verify', '--root', root]);
  const missing = /unknown command "store"|unknown (sub)?command "verify"/.test(r.stderr);
  if (!missing) assert.equal(r.code, 0, `kiln store verify found damage:\n${r.stdout}${r.stderr}`);
  await checkStoreLayout(root);
  return { usedCli: !missing };
}

/** Mount points under `dir` in this mount namespace. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').filter((l) => l.includes(dir));
}

/** The process tree below `pid` (children first found through /proc/<pid>/task/<tid>/children). */
export async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const walk = async (p: number) => {
    for (const tid of await list(`/proc/${p}/task`)) {
      let kids = '';
      try {
        kids = await readFile(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.split(' ').filter(Boolean).map(Number)) {
        out.push(k);
        await walk(k);
      }
    }
  };
  await walk(pid);
  return out;
}

/** Running (not gone, not a zombie waiting for its parent). */
export function alive(pid: number): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // The state letter follows the command name, which may hold spaces and parentheses.
  return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3) !== 'Z';
}
