/**
 * The lifecycle of a tensor-parallel group, as the watchdog drives it:
 *
 *   forming → ready ⇄ stepping → aborting → poisoned → recovering → gone
 *   any live state → fatal (Stage 2: the process exits)   forming/ready → gone (normal teardown)
 */

export const GROUP_STATES = [
  "forming",
  "ready",
  "stepping",
  "aborting",
  "poisoned",
  "recovering",
  "gone",
  "fatal",
] as const;
export type GroupState = (typeof GROUP_STATES)[number];

const TRANSITIONS: Record<GroupState, readonly GroupState[]> = {
  forming: ["ready", "gone", "fatal"],
  ready: ["stepping", "aborting", "gone", "fatal"],
  stepping: ["ready", "aborting", "fatal"],
  aborting: ["poisoned", "fatal"],
  poisoned: ["recovering", "fatal"],
  recovering: ["gone", "fatal"],
  gone: [],
  fatal: [],
};

export function canTransition(from: GroupState, to: GroupState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** A compare-and-swap on the group's state that reports every change. */
export class GroupStateMachine {
  private current: GroupState = "forming";

  constructor(private readonly onTransition: (from: GroupState, to: GroupState, why: string) => void) {}

  get state(): GroupState {
    return this.current;
  }

  /** Moves `from` → `to` if the group is in `from` and the edge exists; false otherwise. */
  transition(from: GroupState, to: GroupState, why: string): boolean {
    if (this.current !== from || !canTransition(from, to)) return false;
    this.current = to;
    this.onTransition(from, to, why);
    return true;
  }

  /** Moves from whatever state to `to`, if the edge exists. */
  force(to: GroupState, why: string): boolean {
    return this.transition(this.current, to, why);
  }
}
