/**
 * Resolves after `ms`, or at once when `signal` aborts (never rejects). The listener is removed
 * when the delay ends, and the timer does not keep the process alive.
 */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    if (signal?.aborted) done();
    else signal?.addEventListener("abort", done, { once: true });
  });
}
