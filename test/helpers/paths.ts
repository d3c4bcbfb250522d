import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The checkout (tests run from dist/test/..., so three levels up from here). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
/** `../shared` beside the checkout: conformance data is read in place, never copied. */
export const sharedDir = join(repoRoot, '..', 'shared');
export const conformanceDir = join(sharedDir, 'conformance');
export const testdataDir = join(repoRoot, 'testdata');
export const kilnBin = join(repoRoot, 'bin', 'kiln');
