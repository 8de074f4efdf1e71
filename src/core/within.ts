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

/** Whether `promise` settles within `ms` (a shutdown grace period): true if it did, false if time ran out. */
export function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return within(promise, ms, () => new Error("late")).then(
    () => true,
    (error: unknown) => !(error instanceof Error && error.message === "late"),
  );
}
