// A small argv parser shared by every command: `--flag value`, `--flag=value`, repeatable
// flags, booleans, short aliases. Unknown flags are errors that name the flag.

import { KilnError } from '../util/errors.js';

export interface FlagSpec {
  /** Long name without dashes. */
  name: string;
  short?: string;
  kind: 'string' | 'boolean' | 'list';
}

export interface ParsedArgs {
  flags: Map<string, string[]>;
  positional: string[];
}

export function parseArgs(argv: string[], specs: FlagSpec[], command: string): ParsedArgs {
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const flags = new Map<string, string[]>();
  const positional: string[] = [];
  const put = (spec: FlagSpec, value: string) => {
    const list = flags.get(spec.name) ?? [];
    if (spec.kind === 'list') list.push(value);
    else list.splice(0, list.length, value);
    flags.set(spec.name, list);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      inline = eq >= 0 ? a.slice(eq + 1) : undefined;
      spec = byLong.get(name);
      if (!spec) throw new KilnError(`${command}: unknown flag --${name}`, { exitCode: 2 });
    } else if (a.startsWith('-') && a.length > 1) {
      spec = byShort.get(a.slice(1, 2));
      if (!spec) throw new KilnError(`${command}: unknown flag ${a.slice(0, 2)}`, { exitCode: 2 });
      if (a.length > 2) inline = a.slice(2);
    } else {
      positional.push(a);
      continue;
    }
    if (spec.kind === 'boolean') {
      if (inline !== undefined && inline !== 'true' && inline !== 'false') {
        throw new KilnError(`${command}: flag --${spec.name} takes true or false, not "${inline}"`, { exitCode: 2 });
      }
      put(spec, inline ?? 'true');
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new KilnError(`${command}: flag --${spec.name} needs a value`, { exitCode: 2 });
    put(spec, value);
  }
  return { flags, positional };
}

export function flagString(args: ParsedArgs, name: string): string | undefined {
  return args.flags.get(name)?.at(-1);
}

export function flagList(args: ParsedArgs, name: string): string[] {
  return args.flags.get(name) ?? [];
}

export function flagBool(args: ParsedArgs, name: string): boolean {
  return flagString(args, name) === 'true';
}

/** `key=value,key2=value2` (buildx's --output / --cache-to syntax). */
export function parseKeyValues(text: string, flag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new KilnError(`${flag}: expected key=value, got "${part}"`, { exitCode: 2 });
    out.set(part.slice(0, eq).trim(), part.slice(eq + 1));
  }
  return out;
}
