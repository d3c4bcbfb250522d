import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';
import type { Command } from './command.js';

const cmd: Command = {
  summary: 'print the version of kiln',
  usage: 'kiln version',
  async run() {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
    process.stdout.write(`kiln ${pkg.version}\n`);
    return 0;
  },
};
export default cmd;
