// One error type for everything a user can cause: the CLI prints its message and exits non-zero
// without a stack trace. Anything else reaching the top is a bug in kiln and shows its stack.

export interface ErrorLocation {
  file: string;
  line: number;
  column?: number;
}

export class KilnError extends Error {
  readonly exitCode: number;
  readonly location?: ErrorLocation;

  constructor(message: string, opts: { location?: ErrorLocation; exitCode?: number; cause?: unknown } = {}) {
    super(opts.location ? `${formatLocation(opts.location)}: ${message}` : message, { cause: opts.cause });
    this.name = 'KilnError';
    this.exitCode = opts.exitCode ?? 1;
    this.location = opts.location;
  }
}

export function formatLocation(loc: ErrorLocation): string {
  return loc.column === undefined ? `${loc.file}:${loc.line}` : `${loc.file}:${loc.line}:${loc.column}`;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
