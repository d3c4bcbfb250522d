// --provenance, --sbom and --attest, as buildx takes them. kiln writes no attestations, so only
// turning them off is accepted (CI jobs pass --provenance=false to get a plain manifest, which
// is what kiln always pushes); asking for one is an error rather than a silent omission.

import { KilnError } from '../util/errors.js';
import { parseKeyValues } from './args.js';

const off = (v: string) => ['false', '0'].includes(v.toLowerCase());

export function checkAttestationFlags(provenance: string | undefined, sbom: string | undefined, attest: string[]): void {
  for (const [flag, v] of [['--provenance', provenance], ['--sbom', sbom]] as const) {
    if (v === undefined || off(v)) continue;
    const kv = v.includes('=') ? parseKeyValues(v, flag) : undefined;
    if (kv?.get('disabled') === 'true') continue;
    throw new KilnError(`${flag}: kiln writes no attestations; only ${flag}=false is accepted, got "${v}"`, { exitCode: 2 });
  }
  for (const v of attest) {
    const kv = parseKeyValues(v, '--attest');
    const type = kv.get('type');
    if (type !== 'provenance' && type !== 'sbom') throw new KilnError(`--attest: expected type=provenance or type=sbom, got "${v}"`, { exitCode: 2 });
    if (kv.get('disabled') !== 'true') {
      throw new KilnError(`--attest: kiln writes no attestations; only type=${type},disabled=true is accepted, got "${v}"`, { exitCode: 2 });
    }
  }
}
