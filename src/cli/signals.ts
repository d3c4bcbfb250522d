// Ctrl-C / SIGTERM cancel the build through an AbortSignal: running steps are stopped and
// cleaned up by their workers before kiln exits (130 for SIGINT, 143 for SIGTERM).

import { KilnError } from '../util/errors.js';

export async function withSignals<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (received) return; // a second Ctrl-C waits for the same cleanup
    received = sig;
    controller.abort(new KilnError(`build cancelled (${sig})`, { exitCode: sig === 'SIGINT' ? 130 : 143 }));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(controller.signal);
  } catch (err) {
    if (received && controller.signal.reason instanceof KilnError) throw controller.signal.reason;
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
