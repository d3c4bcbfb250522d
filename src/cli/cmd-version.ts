import { readFileSync } from 'node:fs';
import type { Command } from './command.js';

const cmd: Command = {
  summary: 'print the version of kiln',
  usage: 'kiln version',
  async run() {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`kiln ${pkg.version}\n`);
    return 0;
  },
};
export default cmd;
