import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isAbsolute, join } from 'node:path';

/** The checkout (tests run from dist/test/..., so three levels up from here). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * `../shared` beside the checkout: conformance data is read in place, never copied. A clone
 * made somewhere else (a temporary folder) finds the one beside the repository it was cloned
 * from; KILN_SHARED names it outright.
 */
function findShared(): string {
  if (process.env.KILN_SHARED) return process.env.KILN_SHARED;
  const beside = join(repoRoot, '..', 'shared');
  if (existsSync(beside)) return beside;
  try {
    const origin = execFileSync('git', ['-C', repoRoot, 'config', '--get', 'remote.origin.url'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const path = origin.startsWith('file://') ? fileURLToPath(origin) : origin;
    if (isAbsolute(path) && existsSync(join(path, '..', 'shared'))) return join(path, '..', 'shared');
  } catch {
    // not a git clone, or no origin: the default below, and tests say what is missing
  }
  return beside;
}

export const sharedDir = findShared();
export const conformanceDir = join(sharedDir, 'conformance');
export const testdataDir = join(repoRoot, 'testdata');
export const kilnBin = join(repoRoot, 'bin', 'kiln');
