// Platforms as `--platform` and image indexes spell them (`linux/amd64`, `linux/arm/v7`), and
// the choice of one manifest from an index the way containerd's default matcher makes it.

import type { Descriptor, Platform } from '../image/types.js';
import { KilnError } from '../util/errors.js';

const NODE_ARCH: Record<string, { architecture: string; variant?: string }> = {
  x64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64' },
  arm: { architecture: 'arm', variant: 'v7' },
  ia32: { architecture: '386' },
  ppc64: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
};

/** Other names of an architecture, with the variant each implies (containerd's normalizeArch). */
const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: 'amd64' },
  'x86-64': { architecture: 'amd64' },
  aarch64: { architecture: 'arm64' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
  i386: { architecture: '386' },
};

/** The platform of this machine (`linux/amd64` here). */
export function defaultPlatform(): Platform {
  const a = NODE_ARCH[process.arch] ?? { architecture: process.arch };
  return normalizePlatform({ os: process.platform === 'linux' ? 'linux' : process.platform, ...a });
}

/** Parses `os/arch[/variant]` (or just `arch`, meaning linux). `flag` names the flag in errors. */
export function parsePlatform(text: string, flag = '--platform'): Platform {
  if (text.includes(',')) {
    throw new KilnError(`${flag}: kiln builds one platform at a time, got "${text}" (build each platform on its own)`, { exitCode: 2 });
  }
  const parts = text.trim().toLowerCase().split('/');
  if (parts.some((p) => !/^[a-z0-9_.-]+$/.test(p)) || parts.length > 3) {
    throw new KilnError(`${flag}: "${text}" is not a platform (expected os/arch[/variant], e.g. linux/amd64)`, { exitCode: 2 });
  }
  const [os, architecture, variant] = parts.length === 1 ? ['linux', parts[0]!, undefined] : [parts[0]!, parts[1]!, parts[2]];
  return normalizePlatform({ os, architecture, variant });
}

/**
 * Canonical spelling, as containerd's platforms.Normalize (and so BuildKit) writes it: aliases
 * resolved, arm64's v8 dropped (`linux/arm64`, TARGETVARIANT empty), arm's implied v7 filled in.
 */
export function normalizePlatform(p: Platform): Platform {
  const alias = ARCH_ALIASES[p.architecture];
  const architecture = alias?.architecture ?? p.architecture;
  let variant = alias && alias.variant !== undefined ? alias.variant : p.variant || undefined;
  if (architecture === 'arm64' && (variant === '8' || variant === 'v8' || variant === 'v8.0')) variant = undefined;
  if (architecture === 'arm64' && (variant === '9' || variant === '9.0' || variant === 'v9.0')) variant = 'v9';
  if (architecture === 'arm' && variant === undefined) variant = 'v7';
  if (architecture === 'arm' && variant !== undefined && /^\d$/.test(variant)) variant = `v${variant}`;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  if (architecture === '386') variant = undefined;
  const out: Platform = { os: p.os, architecture };
  if (variant !== undefined) out.variant = variant;
  return out;
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

export function platformMatches(want: Platform, have: Platform): boolean {
  const a = normalizePlatform(want);
  const b = normalizePlatform(have);
  return a.os === b.os && a.architecture === b.architecture && (a.variant === undefined || a.variant === b.variant);
}

/**
 * The index entry for `want`. Attestation manifests (platform unknown/unknown) never match.
 * `what` names the image in the error, which lists the platforms the index has.
 */
export function selectPlatform(manifests: Descriptor[], want: Platform, what: string): Descriptor {
  const candidates = manifests.filter((d) => d.platform && platformMatches(want, d.platform));
  const exact = candidates.find((d) => normalizePlatform(d.platform!).variant === normalizePlatform(want).variant);
  const chosen = exact ?? candidates[0];
  if (chosen) return chosen;
  const have = manifests.filter((d) => d.platform && d.platform.os !== 'unknown').map((d) => formatPlatform(d.platform!));
  throw new KilnError(`${what}: no image for platform ${formatPlatform(want)} (the index has: ${have.join(', ') || 'none'})`);
}
