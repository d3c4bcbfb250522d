// The helper's spec format (see native/spec.c): records of length-prefixed tokens, each record
// ended by an empty token. Length prefixes let heredoc and secret contents hold any byte.

export type SpecToken = string | Buffer;

export class SandboxSpec {
  private readonly parts: Buffer[] = [];

  add(...tokens: SpecToken[]): this {
    for (const t of tokens) this.token(t);
    this.token('');
    return this;
  }

  encode(): Buffer {
    return Buffer.concat(this.parts);
  }

  private token(t: SpecToken): void {
    const b = typeof t === 'string' ? Buffer.from(t) : t;
    this.parts.push(Buffer.from(`${b.length}:`), b);
  }
}

/** What the sandbox decided about the root filesystem and how the step ended. */
export interface SandboxStatus {
  setupError?: string;
  exitCode?: number;
  signal?: number;
  /** With KILN_SANDBOX_TIMING set: microseconds from the helper's start to each phase. */
  timings: Record<string, number>;
}

export function parseStatus(text: string): SandboxStatus {
  const st: SandboxStatus = { timings: {} };
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp < 0) continue;
    const word = line.slice(0, sp);
    const rest = line.slice(sp + 1);
    if (word === 'error') st.setupError = rest;
    else if (word === 'exit') st.exitCode = Number(rest);
    else if (word === 'signal') st.signal = Number(rest);
    else if (word === 'time') {
      const [phase = '', us = ''] = rest.split(' ');
      st.timings[phase] = Number(us);
    }
  }
  return st;
}
