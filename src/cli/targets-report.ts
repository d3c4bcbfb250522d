// `kiln build --call targets`: the Dockerfile's stages as buildx lists them. A stage's
// description is a comment line right above its FROM that starts with the stage's name (Go's
// doc-comment habit, BuildKit's rule); the last stage is the default target.

import { parseDockerfileText } from '../frontend/parse.js';

interface Target {
  name: string;
  description: string;
  isDefault: boolean;
}

function targetsOf(dockerfile: string, fileName: string): Target[] {
  const froms = parseDockerfileText(dockerfile, fileName).nodes.filter((n) => n.keyword.toLowerCase() === 'from');
  return froms.map((n, i) => {
    const name = n.args.length === 3 && n.args[1]!.toLowerCase() === 'as' ? n.args[2]!.toLowerCase() : '';
    const described = name === '' ? undefined : n.comments.find((c) => c.startsWith(`${name} `));
    return { name, description: described?.slice(name.length + 1) ?? '', isDefault: i === froms.length - 1 };
  });
}

/** The table buildx prints: a column as wide as its widest cell plus one space. */
export function formatTargets(dockerfile: string, fileName: string): string {
  const rows = targetsOf(dockerfile, fileName).map((t) => {
    const name = t.isDefault ? (t.name === '' ? '(default)' : `${t.name} (default)`) : t.name;
    return [name, t.description] as const;
  });
  const width = Math.max('TARGET'.length, ...rows.map(([n]) => [...n].length)) + 1;
  return [['TARGET', 'DESCRIPTION'] as const, ...rows].map(([n, d]) => n + ' '.repeat(width - [...n].length) + d + '\n').join('');
}
