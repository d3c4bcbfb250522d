// Every command opens the store here, so every kiln process is counted as a user of it and a
// prune never removes what another kiln is still writing (see src/store/users.ts).

import { Store, defaultStoreRoot } from '../store/store.js';
import { joinStore, useStoreAlone } from '../store/users.js';

const say = (message: string) => process.stderr.write(`kiln: ${message}\n`);

/** The store at `root` (default: KILN_ROOT or cache/ in the checkout), this process a user of it. */
export async function openStore(root: string | undefined): Promise<Store> {
  const store = await Store.open(root ?? defaultStoreRoot());
  await joinStore(store, say);
  return store;
}

/** The store with this process as its only user (prune); the release ends that. */
export async function openStoreAlone(root: string | undefined): Promise<{ store: Store; release: () => Promise<void> }> {
  const store = await Store.open(root ?? defaultStoreRoot());
  const release = await useStoreAlone(store, say);
  return { store, release };
}
