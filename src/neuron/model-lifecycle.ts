/**
 * The lifecycle of one model on a neuron, as an explicit state machine.
 *
 *   (absent) ──load──▶ loading ──loaded──▶ ready ──unload──▶ unloading ──unloaded──▶ (absent)
 *                         │                  │
 *                         └──failed──▶ failed ◀──fault── (device fault, e.g. TP watchdog)
 *   failed ──load──▶ loading     failed ──unload──▶ unloading
 *
 * Transitions are guarded: a request that does not fit the current state is
 * refused with the status the API documents (409 while unloading, …).
 */
import type { ModelState } from "../core/neuron-api.ts";

export type LifecycleEvent = "load" | "loaded" | "failed" | "unload" | "unloaded" | "fault";
export type LifecycleState = ModelState | "absent";

const TRANSITIONS: Record<LifecycleState, Partial<Record<LifecycleEvent, LifecycleState>>> = {
  absent: { load: "loading" },
  loading: { loaded: "ready", failed: "failed", fault: "failed" },
  ready: { unload: "unloading", fault: "failed" },
  unloading: { unloaded: "absent", failed: "failed", fault: "failed" },
  failed: { load: "loading", unload: "unloading", unloaded: "absent" },
};

/** The next state, or undefined when the event is not allowed in this state. */
export function nextState(state: LifecycleState, event: LifecycleEvent): LifecycleState | undefined {
  return TRANSITIONS[state][event];
}

export interface TransitionRecord {
  id: string;
  from: LifecycleState;
  to: LifecycleState;
  event: LifecycleEvent;
  at: number;
}

/**
 * Holds the state of every model id and applies transitions with a
 * compare-and-swap: `transition(id, event, expected)` succeeds only from the
 * expected state, so two racing handlers cannot both start an unload.
 */
export class LifecycleTable {
  readonly #states = new Map<string, LifecycleState>();
  readonly #listeners = new Set<(record: TransitionRecord) => void>();

  state(id: string): LifecycleState {
    return this.#states.get(id) ?? "absent";
  }

  ids(): string[] {
    return [...this.#states.keys()];
  }

  onTransition(listener: (record: TransitionRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Applies `event` if allowed (and, when given, only from `expected`); returns whether it did. */
  transition(id: string, event: LifecycleEvent, expected?: LifecycleState): boolean {
    const from = this.state(id);
    if (expected !== undefined && from !== expected) return false;
    const to = nextState(from, event);
    if (to === undefined) return false;
    if (to === "absent") this.#states.delete(id);
    else this.#states.set(id, to);
    const record = { id, from, to, event, at: Date.now() };
    for (const listener of this.#listeners) listener(record);
    return true;
  }
}
