// A blob file that begins with the first bytes of another blob: a COPY layer made again after a
// change shares its head with the previous layer (image/previous-layer.ts). Those bytes are
// copied inside the kernel, beside the writing of the rest after them, so they are neither read
// into the process nor written from it.

import { close, open, write } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { copyFileRange } from '../util/syscalls.js';

export interface BlobHead {
  /** The blob whose head this file starts with. */
  path: string;
  /** How many of its bytes: asked once, when the first chunk of the rest arrives. */
  bytes(): number;
}

/** Copied in user space when the kernel will not (another filesystem, an old kernel). */
const FALLBACK_CHUNK = 1 << 20;

export class HeadedBlobFile extends Writable {
  private fd = -1;
  private position = 0;
  private copied: Promise<void> | undefined;

  constructor(
    private readonly file: string,
    private readonly head: BlobHead,
  ) {
    super();
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.file, 'w', (err, fd) => {
      if (!err) this.fd = fd;
      callback(err);
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.startHead();
    const at = this.position;
    this.position += chunk.length;
    writeFully(this.fd, chunk, at, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.startHead().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const fd = this.fd;
    this.fd = -1;
    // The head copy may still be running on the thread pool: close once it has stopped.
    const settled = this.copied?.catch(() => undefined) ?? Promise.resolve();
    void settled.then(() => (fd >= 0 ? close(fd, () => callback(error)) : callback(error)));
  }

  private startHead(): Promise<void> {
    if (!this.copied) {
      const bytes = this.head.bytes();
      this.position = bytes;
      this.copied = this.copyHead(bytes);
      this.copied.catch(() => undefined); // reported by _final
    }
    return this.copied;
  }

  private async copyHead(bytes: number): Promise<void> {
    if (bytes === 0) return;
    const source = await openFile(this.head.path, 'r');
    try {
      let done = await copyFileRange(source.fd, 0, this.fd, 0, bytes).catch(() => 0);
      const buf = done < bytes ? Buffer.allocUnsafe(FALLBACK_CHUNK) : undefined;
      while (done < bytes) {
        const { bytesRead } = await source.read(buf!, 0, Math.min(buf!.length, bytes - done), done);
        if (bytesRead === 0) throw new Error(`${this.head.path} is shorter than the ${bytes} bytes to copy from it`);
        await new Promise<void>((resolve, reject) => writeFully(this.fd, buf!.subarray(0, bytesRead), done, (err) => (err ? reject(err) : resolve())));
        done += bytesRead;
      }
    } finally {
      await source.close();
    }
  }
}

function writeFully(fd: number, buf: Buffer, position: number, callback: (error?: Error | null) => void): void {
  write(fd, buf, 0, buf.length, position, (err, n) => {
    if (err) callback(err);
    else if (n < buf.length) writeFully(fd, buf.subarray(n), position + n, callback);
    else callback();
  });
}
