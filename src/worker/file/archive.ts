// ADD of a local archive: recognised by content (a tar, plain or compressed with gzip, bzip2,
// xz or zstd), never by name; anything else is copied as a file, as BuildKit does. The archive
// is extracted with the store's safe extractor into a scratch folder first (so a zip-slip or
// symlink escape is refused before anything reaches the diff), then moved into the stage.

import { rm } from 'node:fs/promises';
import { RootfsView } from '../../store/rootfs-view.js';
import { extractTar } from '../../util/tar/extract.js';
import { openDecompressed, peek, sniffDecompressed } from '../../util/tar/filter.js';
import { fileStream } from '../../util/fs.js';
import { headerChecksum } from '../../util/tar/header.js';
import type { DiffWriter, EntryMeta } from './diff-writer.js';
import type { CopyOptions } from './copy.js';
import type { SelectedNode } from './sources.js';

function isTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  const magic = block.subarray(257, 263).toString('latin1');
  if (magic === 'ustar\0' || magic === 'ustar ') return true;
  // A v7 tar has no magic: accept it when the header checksum adds up.
  const stored = parseInt(block.subarray(148, 156).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
  if (!Number.isFinite(stored)) return false;
  return headerChecksum(block) === stored && block[0] !== 0;
}

export async function isArchiveFile(host: string): Promise<boolean> {
  const file = fileStream(host);
  try {
    const { stream } = await sniffDecompressed(file);
    try {
      const { head, stream: rest } = await peek(stream, 512);
      rest.destroy();
      return isTarHeader(head);
    } catch {
      return false; // not really compressed data: an ordinary file
    } finally {
      stream.destroy();
    }
  } finally {
    file.destroy();
  }
}

/** `p` with the links among its parents followed inside the image, as writing through them would. */
async function resolveParents(w: DiffWriter, p: string): Promise<string> {
  const i = p.lastIndexOf('/');
  if (i <= 0) return p;
  const parent = await w.mergedView().locate(p.slice(0, i), true);
  return `${parent.path === '/' ? '' : parent.path}/${p.slice(i + 1)}`;
}

/** Extracts the archive at `host` into the destination folder `target` of the stage. */
export async function extractArchiveInto(
  host: string,
  target: string,
  w: DiffWriter,
  opts: CopyOptions,
  parents: EntryMeta,
  copyTree: (node: SelectedNode, target: string, namedDirs: ReadonlySet<string>) => Promise<void>,
): Promise<void> {
  const scratch = await opts.tempDir();
  try {
    const input = await openDecompressed(fileStream(host));
    const { dirs, whiteouts } = await extractTar(input, scratch, { whiteouts: 'apply', label: `ADD archive ${host.slice(host.lastIndexOf('/') + 1)}` });
    const view = new RootfsView([scratch]);
    const build = async (dir: SelectedNode): Promise<void> => {
      for (const e of await view.readdir(dir.entry)) {
        const name = e.path.slice(e.path.lastIndexOf('/') + 1);
        const node: SelectedNode = { entry: e, sub: dir.sub === '' ? name : `${dir.sub}/${name}`, name, children: [] };
        if (e.type === 'dir') await build(node);
        dir.children.push(node);
      }
    };
    const root: SelectedNode = { entry: await view.root(), sub: '', name: '', children: [] };
    await build(root);
    // Whiteouts (an image layer's tar, say) delete from the image what the archive itself does
    // not hold in the end; the extraction already carried them out on its own entries. Which
    // those are is asked before the copy, which moves the archive's files out of the scratch folder.
    const removed: string[] = [];
    for (const rel of whiteouts.removed) if (!(await view.lstat(`/${rel}`))) removed.push(rel);
    await w.ensureDir(target, parents);
    const under = (rel: string) => (rel === '' ? target : target === '/' ? `/${rel}` : `${target}/${rel}`);
    for (const c of root.children) await copyTree(c, under(c.name), dirs);
    for (const rel of whiteouts.opaque) await w.makeOpaque(await resolveParents(w, under(rel)));
    for (const rel of removed) await w.whiteout(await resolveParents(w, under(rel)));
    await w.settle(); // the copies read from the scratch folder
  } finally {
    await w.settle().catch(() => undefined); // reported by the step; the scratch folder goes either way
    await rm(scratch, { recursive: true, force: true });
  }
}
