// The last lines of a step's output, kept for the failure message.

const MAX_BYTES = 64 * 1024;

export class OutputTail {
  private buf = Buffer.alloc(0);

  constructor(private readonly maxLines: number) {}

  push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.buf.length > MAX_BYTES) this.buf = this.buf.subarray(this.buf.length - MAX_BYTES);
  }

  lines(): string[] {
    const text = this.buf.toString('utf8').replace(/\n$/, '');
    if (text === '') return [];
    return text.split('\n').slice(-this.maxLines);
  }
}
