// Builder flags (`--name=value` words before the arguments), checked against what each
// instruction accepts.

export class FlagError extends Error {
  constructor(
    message: string,
    /** The flag word, so the error can point at its column. */
    readonly flag?: string,
  ) {
    super(message);
  }
}

export type FlagKind = 'string' | 'bool' | 'list';

export class Flags {
  private readonly values = new Map<string, string[]>();

  constructor(
    words: readonly string[],
    spec: Record<string, FlagKind>,
    instruction: string,
  ) {
    for (const word of words) {
      const body = word.replace(/^--/, '');
      const eq = body.indexOf('=');
      const name = eq < 0 ? body : body.slice(0, eq);
      const value = eq < 0 ? undefined : body.slice(eq + 1);
      const kind = spec[name];
      if (!kind) {
        throw new FlagError(
          name === '' ? `empty flag name in ${instruction}` : `unknown flag: --${name} (${instruction} takes ${Object.keys(spec).map((n) => '--' + n).join(', ') || 'no flags'})`,
          word,
        );
      }
      const existing = this.values.get(name);
      if (existing && kind !== 'list') throw new FlagError(`duplicate flag specified: --${name}`, word);
      let v: string;
      if (kind === 'bool') {
        v = value ?? 'true';
        const lv = v.toLowerCase();
        if (lv !== 'true' && lv !== 'false') throw new FlagError(`expecting boolean value for flag --${name}, not: ${v}`, word);
        v = lv;
      } else {
        if (value === undefined) throw new FlagError(`missing a value on flag: --${name}`, word);
        v = value;
      }
      this.values.set(name, [...(existing ?? []), v]);
    }
  }

  string(name: string): string | undefined {
    return this.values.get(name)?.[0];
  }

  bool(name: string): boolean | undefined {
    const v = this.values.get(name)?.[0];
    return v === undefined ? undefined : v === 'true';
  }

  list(name: string): string[] {
    return this.values.get(name) ?? [];
  }
}
