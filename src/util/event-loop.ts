// Long runs of synchronous work (many small files: sync calls are cheaper here than the thread
// pool's round trips) must still let the event loop turn now and then: timers (progress,
// Ctrl-C) and the I/O that feeds work running beside them on the thread pool wait for it.

/** One turn of the event loop: I/O callbacks and timers due run before this resolves. */
export function turn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** Asks for a turn of the event loop once `everyMs` of synchronous work has gone by. */
export class Breather {
  // Date.now, not performance.now: that loads perf_hooks (~1 ms) for a few-millisecond clock.
  private last = Date.now();

  constructor(private readonly everyMs: number) {}

  /** A turn to await when one is due; undefined (nothing to wait for) otherwise. */
  due(): Promise<void> | undefined {
    const now = Date.now();
    if (now - this.last < this.everyMs) return undefined;
    this.last = now;
    return turn();
  }
}
