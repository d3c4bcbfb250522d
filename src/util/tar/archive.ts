// A deterministic tar of named files (not a folder walk): the OCI layout and docker-archive
// outputs. Entries sorted by name, owner 0/0, a fixed mtime, bodies streamed.

import type { Readable } from 'node:stream';
import { Readable as NodeReadable } from 'node:stream';
import { once } from 'node:events';
import tar from 'tar-stream';

export interface ArchiveFile {
  /** Path inside the archive, `/`-separated, no leading slash. */
  name: string;
  size: number;
  /** The body: bytes, or a function opening a stream of exactly `size` bytes. */
  body: Buffer | (() => Readable);
}

export function createArchive(files: ArchiveFile[], mtimeSecs = 0): Readable {
  const pack = tar.pack();
  // The error reaches the reader through the returned stream; without this listener a reader
  // that already gave up would turn it into an uncaught exception.
  pack.on('error', () => undefined);
  const mtime = new Date(mtimeSecs * 1000);
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.name.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/') + '/');
  }
  type Item = { name: string; dir: true } | ({ dir: false } & ArchiveFile);
  const items: Item[] = [...[...dirs].map((name) => ({ name, dir: true as const })), ...files.map((f) => ({ ...f, dir: false as const }))];
  items.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  (async () => {
    for (const it of items) {
      if (it.dir) {
        await new Promise<void>((res, rej) => pack.entry({ name: it.name, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime }, (e) => (e ? rej(e) : res())));
        continue;
      }
      const header = { name: it.name, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime, size: it.size };
      if (Buffer.isBuffer(it.body)) {
        await new Promise<void>((res, rej) => pack.entry(header, it.body as Buffer, (e) => (e ? rej(e) : res())));
        continue;
      }
      let sink!: ReturnType<tar.Pack['entry']>;
      const done = new Promise<void>((res, rej) => {
        sink = pack.entry(header, (e) => (e ? rej(e) : res()));
      });
      done.catch(() => undefined); // a failed body is reported by the loop below
      (sink as unknown as NodeJS.EventEmitter).on('error', () => undefined);
      for await (const chunk of it.body() as AsyncIterable<Buffer>) {
        if (!sink.write(chunk)) await once(sink as unknown as NodeJS.EventEmitter, 'drain');
      }
      (sink as unknown as { end(): void }).end();
      await done;
    }
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return NodeReadable.from(pack as unknown as AsyncIterable<Buffer>, { objectMode: false });
}
