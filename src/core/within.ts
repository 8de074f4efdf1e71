/**
 * Resolves or rejects with `promise`, or rejects with `onLate()` after `ms`;
 * the timer never outlives the race. For waits on threads that may be stuck
 * in native code (a Worker that does not close, a group that does not form).
 */
export function within<T>(promise: Promise<T>, ms: number, onLate: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onLate()), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * Whether `promise` settles within `ms` (a shutdown grace period): true if it
 * did, false if time ran out or `hurry` was aborted first.
 */
export function settlesWithin(promise: Promise<unknown>, ms: number, hurry?: AbortSignal): Promise<boolean> {
  if (hurry?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const finish = (settled: boolean) => {
      clearTimeout(timer);
      hurry?.removeEventListener("abort", onAbort);
      resolve(settled);
    };
    const onAbort = () => finish(false);
    const timer = setTimeout(() => finish(false), ms);
    hurry?.addEventListener("abort", onAbort, { once: true });
    promise.then(
      () => finish(true),
      () => finish(true),
    );
  });
}
