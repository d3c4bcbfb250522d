// How FROM finds its image: the local store first, a registry when the store lacks it
// (or always, with --pull), as `docker build` does; an OCI layout named with --build-context
// from its folder alone.

import type { Store } from '../store/store.js';
import type { Digest } from '../graph/ops.js';
import type { ImageConfigFile, Platform } from '../image/types.js';
import type { EventSink } from '../solver/events.js';
import { resolveImage } from '../registry/pull.js';
import { loadLayoutImage, type LayoutImage } from '../image/oci-layout.js';
import { unpackAhead, unpackWhileDownloading } from '../image/load.js';

export interface ImageResolverOptions {
  pull: boolean;
  insecureRegistries: string[];
  signal: AbortSignal;
  emit: EventSink;
  /** `--build-context` OCI layouts, by the reference the frontend is given for them. */
  layouts: ReadonlyMap<string, LayoutImage>;
}

export type ImageResolver = (ref: string, platform: Platform) => Promise<{ ref: string; digest: Digest; config: ImageConfigFile }>;

export function makeImageResolver(store: Store, opts: ImageResolverOptions): ImageResolver {
  const seen = new Map<string, ReturnType<ImageResolver>>();
  return (ref, platform) => {
    const key = `${ref}\0${platform.os}/${platform.architecture}/${platform.variant ?? ''}`;
    let p = seen.get(key);
    if (!p) {
      const layout = opts.layouts.get(ref);
      p = (layout ? loadLayoutImage(store, layout, platform) : resolveImage(store, ref, platform, {
        pull: opts.pull ? 'always' : 'missing',
        insecureRegistries: opts.insecureRegistries,
        signal: opts.signal,
        onEvent: (e) => {
          if (e.type === 'resolve') opts.emit({ type: 'message', level: 'info', text: `resolved ${e.ref} to ${e.digest}` });
        },
        // Only images a build stage needs are resolved: each layer is unpacked as it downloads
        // (or, when its blob was there already or came on a retry, once it is stored).
        onLayerDownload: (layer, diffId, bytes, stored) => unpackWhileDownloading(store, diffId, layer, bytes, stored, opts.signal),
        onLayer: (layer, diffId) => unpackAhead(store, diffId, layer, opts.signal),
      })).then((r) => ({ ref: r.ref, digest: r.digest, config: r.config }));
      seen.set(key, p);
    }
    return p;
  };
}
