/**
 * One chat's bounds (src/gateway/upstream-guard.ts ChatBounds): one abort
 * controller for all its attempts. A node marked down ends the attempt on
 * it, and only that attempt: the retry gets a live signal. A node marked
 * down after its attempt failed must not end the router's wait for another
 * copy (a rolling restart's drained node goes down while the request waits
 * for the next one). The client leaving ends everything.
 */
import { expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import type { NodeStateListener } from "../../src/gateway/fleet/node-state.ts";
import { ChatBounds, UpstreamWatchdog } from "../../src/gateway/upstream-guard.ts";

function fleetEvents() {
  const listeners: NodeStateListener[] = [];
  return {
    state: {
      onStateChange(listener: NodeStateListener) {
        listeners.push(listener);
        return () => {};
      },
    },
    down(node: string) {
      for (const listener of listeners) listener({ node, from: "up", to: "down", reason: "polls failed" });
    },
  };
}

test("a node marked down ends the attempt on it with an error naming it; the retry gets a live signal", () => {
  const fleet = fleetEvents();
  const bounds = new ChatBounds(
    new AbortController().signal,
    undefined,
    new UpstreamWatchdog(fleet.state, 60_000),
  );
  const first = bounds.attempt("a");
  fleet.down("a");
  expect(first.aborted).toBe(true);
  expect(first.reason).toBeInstanceOf(CortexError);
  expect((first.reason as CortexError).message).toContain("node a was marked down");
  const wait = bounds.betweenAttempts();
  expect(wait.aborted).toBe(false);
  const second = bounds.attempt("b");
  expect(second.aborted).toBe(false);
  fleet.down("a");
  expect(second.aborted).toBe(false);
  bounds.clear();
});

test("a node marked down after its attempt failed does not end the wait for another copy", () => {
  const fleet = fleetEvents();
  const bounds = new ChatBounds(
    new AbortController().signal,
    undefined,
    new UpstreamWatchdog(fleet.state, 60_000),
  );
  bounds.attempt("b");
  // The attempt on b failed (b is draining); the router now waits for another copy.
  const wait = bounds.betweenAttempts();
  fleet.down("b");
  expect(wait.aborted).toBe(false);
  expect(bounds.signal.aborted).toBe(false);
  bounds.clear();
});

test("the client leaving ends the attempt and every wait, with the client's reason", () => {
  const fleet = fleetEvents();
  const client = new AbortController();
  const bounds = new ChatBounds(client.signal, 600_000, new UpstreamWatchdog(fleet.state, 60_000));
  const attempt = bounds.attempt("a");
  client.abort(new Error("client closed"));
  expect(attempt.aborted).toBe(true);
  expect((attempt.reason as Error).message).toBe("client closed");
  expect(bounds.betweenAttempts().aborted).toBe(true);
  // Ended for good: a node marked down afterwards hands out no fresh signal.
  fleet.down("a");
  expect(bounds.signal.aborted).toBe(true);
  bounds.clear();
});

test("the request deadline ends the chat with an error naming request_timeout_s", async () => {
  const bounds = new ChatBounds(new AbortController().signal, 40);
  const signal = bounds.attempt("a");
  const reason = await new Promise<unknown>((resolve) =>
    signal.addEventListener("abort", () => resolve(signal.reason), { once: true }),
  );
  expect(reason).toBeInstanceOf(CortexError);
  expect((reason as CortexError).code).toBe("timeout");
  expect((reason as CortexError).message).toContain("gateway.request_timeout_s (0.04 s)");
  bounds.clear();
});
