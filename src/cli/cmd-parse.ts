import { readFile } from 'node:fs/promises';
import type { Command } from './command.js';
import { parseArgs, flagBool, flagString } from './args.js';
import { KilnError } from '../util/errors.js';
import { parseDockerfileText } from '../frontend/parse.js';
import { dumpAst } from '../frontend/parser/node.js';
import { formatDiagnostic } from '../frontend/diagnostics.js';

const cmd: Command = {
  summary: 'parse a Dockerfile and print its syntax tree',
  usage: `kiln parse --dump [-f FILE]

Parses FILE (default ./Dockerfile; "-" reads stdin) and prints BuildKit's AST dump:
one "(instruction ...)" line per instruction. Warnings go to stderr.

  -f, --file FILE   the Dockerfile
      --dump        print the dump (the only output format so far)`,
  async run(argv) {
    const args = parseArgs(argv, [
      { name: 'file', short: 'f', kind: 'string' },
      { name: 'dump', kind: 'boolean' },
    ], 'kiln parse');
    if (args.positional.length) throw new KilnError(`kiln parse: unexpected argument "${args.positional[0]}"`, { exitCode: 2 });
    if (!flagBool(args, 'dump')) throw new KilnError('kiln parse: say --dump (the only output format)', { exitCode: 2 });
    const file = flagString(args, 'file') ?? 'Dockerfile';
    let text: string;
    try {
      text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
    } catch (e) {
      throw new KilnError(`kiln parse: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    const parsed = parseDockerfileText(text, file);
    for (const d of parsed.diagnostics) process.stderr.write(formatDiagnostic(d) + '\n');
    process.stdout.write(dumpAst(parsed.nodes) + '\n');
    return 0;
  },
};
export default cmd;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
