/** Which /health statuses a readiness probe (GET /ready) passes: the Service sends requests only to these. */
import { describe, expect, test } from "bun:test";
import type { HealthResponse } from "../../src/core/neuron-api.ts";
import { isReady } from "../../src/neuron/readiness.ts";

describe("isReady", () => {
  const cases: Array<[HealthResponse["status"], boolean]> = [
    ["ok", true],
    // A recycled device or a recovered group: the rest of the node still serves.
    ["degraded", true],
    // SIGTERM: in-flight requests finish, new ones go elsewhere.
    ["draining", false],
    // Stage 2 is under way: the process exits for a restart.
    ["unhealthy", false],
  ];
  for (const [status, ready] of cases)
    test(`${status} -> ${ready ? "ready" : "not ready"}`, () => expect(isReady(status)).toBe(ready));

  test("a status it does not know is not ready", () => {
    expect(isReady("resting" as HealthResponse["status"])).toBe(false);
  });
});
