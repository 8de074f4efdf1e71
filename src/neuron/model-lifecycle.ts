/**
 * The lifecycle of one model on a neuron, as an explicit state machine.
 *
 *   (absent) ──load──▶ loading ──loaded──▶ ready ──unload──▶ unloading ──unloaded──▶ (absent)
 *                         │                  │
 *                         └──failed──▶ failed ◀──fault── (device fault, e.g. TP watchdog)
 *   failed ──load──▶ loading     failed ──unload──▶ unloading
 *
 * Transitions are guarded: a request that does not fit the current state is
 * refused with the status the API documents (409 while unloading, …). The
 * engine's model registry (engine/model-registry.ts) applies them.
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
