/**
 * Issue 18 §14: gateway placement ignored that a tensor-parallel group needs
 * its devices to itself. With memory to spare, an idle model on one of the
 * devices was never evicted; the neuron refused the group (409, the device
 * serves a model) and every request got 502. Now every model on a chosen
 * device is a victim, and a device with a model that cannot go is skipped.
 */
import { expect, test } from "bun:test";
import { planPlacement, planPlacements } from "../../src/gateway/routing/plan-placement.ts";
import { device, file, fleet, GiB, model, node, profile } from "../unit/gateway-fixtures.ts";

const big = profile({ id: "big", devices: 2, vram_estimate: 8 * GiB });
const bigFile = file("big.gguf", 6 * GiB);

function gpu(id: string) {
  return device(id, { memoryTotal: 24 * GiB, memoryFree: 20 * GiB });
}

test("an idle model on a chosen device is evicted though memory would suffice", () => {
  const plan = planPlacement(
    big,
    fleet(
      node("a", {
        devices: [gpu("cuda-dev-0"), gpu("cuda-dev-1")],
        available: [bigFile],
        loaded: [model("small", { devices: ["cuda-dev-0"], memoryBytes: GiB })],
      }),
    ),
    "lru",
  );
  expect(plan.devices.sort()).toEqual(["cuda-dev-0", "cuda-dev-1"]);
  expect(plan.victims.map((victim) => victim.id)).toEqual(["small"]);
});

test("free devices are preferred to evicting, and a pinned or busy model's device is skipped", () => {
  const plan = planPlacement(
    big,
    fleet(
      node("a", {
        devices: [gpu("cuda-dev-0"), gpu("cuda-dev-1"), gpu("cuda-dev-2"), gpu("cuda-dev-3")],
        available: [bigFile],
        loaded: [
          model("pinned", { devices: ["cuda-dev-0"], pinned: true }),
          model("busy", { devices: ["cuda-dev-1"], inFlight: 1 }),
          model("idle", { devices: ["cuda-dev-2"] }),
        ],
      }),
    ),
    "lru",
  );
  expect(plan.devices.sort()).toEqual(["cuda-dev-2", "cuda-dev-3"]);
  expect(plan.victims.map((victim) => victim.id)).toEqual(["idle"]);
});

test("no group fits when too few devices can be had to itself", () => {
  const result = planPlacements(
    big,
    fleet(
      node("a", {
        devices: [gpu("cuda-dev-0"), gpu("cuda-dev-1")],
        available: [bigFile],
        loaded: [model("pinned", { devices: ["cuda-dev-0"], pinned: true })],
      }),
    ),
    "lru",
  );
  expect(result.ok).toBe(false);
});
