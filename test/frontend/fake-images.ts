// Images for frontend tests: resolved by name to a made-up digest and a config, nothing pulled.
import type { FrontendInput } from '../../src/frontend/index.js';
import type { ImageConfigFile } from '../../src/image/types.js';
import { sha256 } from '../../src/util/digest.js';

const DEFAULT_ENV = ['PATH=/usr/local/bin:/usr/bin:/bin', 'BASE=1'];

/** A resolver that records what it was asked for; `configs` adds to an image's config by name. */
export function fakeImages(configs: Record<string, Partial<ImageConfigFile['config']>> = {}, env: string[] = DEFAULT_ENV) {
  const calls: string[] = [];
  const resolveImage: FrontendInput['resolveImage'] = async (ref, platform) => {
    calls.push(`${ref} ${platform.os}/${platform.architecture}`);
    const full = ref.includes('/') ? ref : `docker.io/library/${ref}${ref.includes(':') ? '' : ':latest'}`;
    return {
      ref: full,
      digest: sha256(full + platform.architecture),
      config: {
        architecture: platform.architecture, os: platform.os, rootfs: { type: 'layers', diff_ids: [] },
        config: { Env: env, ...(configs[ref] ?? {}) },
      },
    };
  };
  return { calls, resolveImage };
}
