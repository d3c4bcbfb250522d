import { commands } from './commands.js';
import { KilnError, errorMessage } from '../util/errors.js';
import { adoptDeferredCaCerts } from '../util/fetch.js';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const lines = ['kiln: build container images from Dockerfiles, without a daemon', '', 'Commands:'];
    for (const [n, load] of Object.entries(commands)) lines.push(`  ${n.padEnd(10)} ${(await load()).default.summary}`);
    lines.push('', 'Run `kiln COMMAND --help` for a command\'s flags.');
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  }
  if (name === '--version') return main(['version']);
  const load = commands[name];
  if (!load) {
    process.stderr.write(`kiln: unknown command "${name}" (see kiln --help)\n`);
    return 2;
  }
  const cmd = (await load()).default;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(cmd.usage.trimEnd() + '\n');
    return 0;
  }
  return cmd.run(rest);
}

adoptDeferredCaCerts();
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof KilnError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`kiln: internal error: ${err instanceof Error ? err.stack : errorMessage(err)}\n`);
      process.exitCode = 70;
    }
  },
);
