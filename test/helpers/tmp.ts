import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
// The test runner gives each test file its own process: removing at exit ties a folder's life
// to its file, wherever tempDir was called (node:test's after() inside a before() hook would
// remove it as soon as that hook ends).
process.on('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder removed when the test file ends. */
export async function tempDir(prefix = 'kiln-test-'): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
