/**
 * When the supervised local neuron is started again after it exits: pure
 * policy, no clocks or processes (local-neuron-supervisor.ts measures and
 * acts). Exponential backoff, capped, reset once a run stayed healthy long
 * enough that its exit is a new incident rather than the same one again.
 */

export interface BackoffPolicy {
  /** Delay before the first restart of an incident. */
  initialMs: number;
  /** Each further failure in a row multiplies the delay by this. */
  factor: number;
  /** The delay never exceeds this. */
  maxMs: number;
  /** A run that was healthy at least this long resets the failure count. */
  healthyResetMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: 1_000,
  factor: 2,
  maxMs: 30_000,
  healthyResetMs: 60_000,
});

export interface RestartDecision {
  /** Failures in a row, this exit included (1 after a long healthy run). */
  failures: number;
  delayMs: number;
}

/**
 * The restart after an exit. `failuresBefore` counts the failures in a row
 * before this one; `healthyMs` is how long the run that ended had been
 * healthy (undefined when it never became healthy: a failed start).
 */
export function nextRestart(
  policy: BackoffPolicy,
  failuresBefore: number,
  healthyMs: number | undefined,
): RestartDecision {
  const reset = healthyMs !== undefined && healthyMs >= policy.healthyResetMs;
  const failures = (reset ? 0 : failuresBefore) + 1;
  const delayMs = Math.min(policy.maxMs, Math.round(policy.initialMs * policy.factor ** (failures - 1)));
  return { failures, delayMs };
}

/** The neuron's exit code for a Stage 2 exit or a native abort (docs/RECOVERY.md). */
export const STAGE2_EXIT_CODE = 70;

export interface ExitReason {
  /** Bounded, for the metric's `reason` label: `exit_70`, `signal_SIGKILL`, `health_timeout`. */
  label: string;
  /** For the log line. */
  text: string;
}

/**
 * Why the child ended: its exit code or the signal that killed it, or the
 * supervisor giving up on a start that never answered `/health`.
 */
export function exitReason(
  exit: { code: number | null; signal: string | number | null } | "health_timeout",
): ExitReason {
  if (exit === "health_timeout")
    return { label: "health_timeout", text: "did not answer /health in time and was killed" };
  if (exit.signal !== null) return { label: `signal_${exit.signal}`, text: `killed by ${exit.signal}` };
  const code = exit.code ?? -1;
  if (code === STAGE2_EXIT_CODE)
    return {
      label: `exit_${code}`,
      text: `exited with code ${code} (Stage 2: a device could not be recovered in-process)`,
    };
  return { label: `exit_${code}`, text: `exited with code ${code}` };
}
