/**
 * A node's state in the fleet, as an explicit state machine:
 *
 *   unknown ──poll ok──▶ up ⇄ degraded        (degraded: a device is poisoned
 *      │                  │       │             or the neuron says so)
 *      └──poll failed──▶ down ◀───┘            (unreachable, unhealthy, or
 *                         │                     a proxied request failed to connect)
 *                         └──poll ok──▶ up | degraded
 *
 *   up | degraded | unknown ──neuron reports draining──▶ draining ──▶ down | up | degraded
 *   (draining: the neuron got SIGTERM; its in-flight requests finish there, new ones go elsewhere)
 *
 * Only `up` and `degraded` nodes take requests and loads.
 */
import type { NodeState } from "../../core/admin-api.ts";
import type { HealthResponse } from "../../core/neuron-api.ts";

/** Allowed transitions; anything else is a bug, refused by the guard. */
const TRANSITIONS: Readonly<Record<NodeState, readonly NodeState[]>> = {
  unknown: ["up", "degraded", "draining", "down"],
  up: ["degraded", "draining", "down"],
  degraded: ["up", "draining", "down"],
  // A restarted neuron may answer `ok` from the same address before any poll failed.
  draining: ["up", "degraded", "down"],
  down: ["up", "degraded", "draining"],
};

export function canTransition(from: NodeState, to: NodeState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** What a successful poll says the node's state should be. */
export function stateFromHealth(health: Pick<HealthResponse, "status" | "devices">): NodeState {
  switch (health.status) {
    case "ok":
      return health.devices.some((device) => device.poisoned) ? "degraded" : "up";
    case "degraded":
      return "degraded";
    case "draining":
      return "draining";
    case "unhealthy":
      // Stage 2 recovery: the neuron is about to exit for a restart.
      return "down";
    default: {
      const unreachable: never = health.status;
      return unreachable;
    }
  }
}

export interface NodeStateChange {
  node: string;
  from: NodeState;
  to: NodeState;
  reason: string;
}

export type NodeStateListener = (change: NodeStateChange) => void;

/** One node's state with a guarded compare-and-swap that emits each change. */
export class NodeStateMachine {
  readonly node: string;
  #state: NodeState = "unknown";
  readonly #emit: NodeStateListener;

  constructor(node: string, emit: NodeStateListener) {
    this.node = node;
    this.#emit = emit;
  }

  get state(): NodeState {
    return this.#state;
  }

  /**
   * Moves to `to` if the state is still `expected` and the transition is
   * allowed; returns whether it moved. Staying in the same state is a no-op.
   */
  compareAndSet(expected: NodeState, to: NodeState, reason: string): boolean {
    if (this.#state !== expected || expected === to || !canTransition(expected, to)) return false;
    this.#state = to;
    this.#emit({ node: this.node, from: expected, to, reason });
    return true;
  }

  /** Moves to `to` from whatever the current state is, if allowed. */
  moveTo(to: NodeState, reason: string): boolean {
    return this.compareAndSet(this.#state, to, reason);
  }
}
