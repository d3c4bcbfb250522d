// Shell form: the words after RUN/CMD/ENTRYPOINT go to the image's SHELL (default /bin/sh -c)
// as one string.

import type { ImageConfig } from '../image/types.js';

export function withShell(c: ImageConfig, args: readonly string[]): string[] {
  const shell = c.Shell && c.Shell.length ? c.Shell : ['/bin/sh', '-c'];
  return [...shell, args.join(' ')];
}
