// The command table: name -> module. Modules load lazily so `kiln parse` never pays for
// the registry client, and so on.
import type { Command } from './command.js';

export const commands: Record<string, () => Promise<{ default: Command }>> = {
  version: () => import('./cmd-version.js'),
  parse: () => import('./cmd-parse.js'),
  context: () => import('./cmd-context.js'),
  pull: () => import('./cmd-pull.js'),
  push: () => import('./cmd-push.js'),
  login: () => import('./cmd-login.js'),
  logout: () => import('./cmd-logout.js'),
  import: () => import('./cmd-import.js'),
  images: () => import('./cmd-images.js'),
  inspect: () => import('./cmd-inspect.js'),
  history: () => import('./cmd-history.js'),
  tag: () => import('./cmd-tag.js'),
  rmi: () => import('./cmd-rmi.js'),
  export: () => import('./cmd-export.js'),
  store: () => import('./cmd-store.js'),
  du: () => import('./cmd-du.js'),
  prune: () => import('./cmd-prune.js'),
  build: () => import('./cmd-build.js'),
};
