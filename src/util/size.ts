// Sizes as docker reads --memory, --shm-size and a tmpfs mount's size (go-units' RAMInBytes):
// bytes, or a number with a k, m, g, t or p suffix, binary (1k = 1024), `i` and `b` optional.

/** The size in bytes, or undefined when `text` is not one. */
export function ramInBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgtp]?)i?b?$/i.exec(text.trim());
  if (!m) return undefined;
  const mult = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 }[m[2]!.toLowerCase() as '' | 'k']!;
  return Math.floor(Number(m[1]) * mult);
}
