import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from './command.js';
import { parseArgs, flagString } from './args.js';
import { KilnError } from '../util/errors.js';
import { readIgnorePatterns } from '../frontend/dockerignore.js';
import { listContext } from '../frontend/context.js';

const cmd: Command = {
  summary: 'show what a build would read from a context folder',
  usage: `kiln context ls [-f FILE] DIR

Prints every path of DIR that a build would use, after FILE.dockerignore (beside the
Dockerfile) or DIR/.dockerignore: one path per line, relative to DIR, sorted.

  -f, --file FILE   the Dockerfile (default DIR/Dockerfile); selects FILE.dockerignore`,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== 'ls') throw new KilnError(`kiln context: unknown subcommand "${sub ?? ''}" (only "ls")`, { exitCode: 2 });
    const args = parseArgs(rest, [{ name: 'file', short: 'f', kind: 'string' }], 'kiln context ls');
    if (args.positional.length !== 1) throw new KilnError('kiln context ls: give exactly one context folder', { exitCode: 2 });
    const dir = args.positional[0]!;
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new KilnError(`kiln context ls: ${dir} is not a folder`);
    const dockerfile = flagString(args, 'file') ?? join(dir, 'Dockerfile');
    const { patterns } = await readIgnorePatterns(dir, dockerfile);
    const entries = await listContext(dir, patterns);
    process.stdout.write(entries.map((e) => e.path + '\n').join(''));
    return 0;
  },
};
export default cmd;
