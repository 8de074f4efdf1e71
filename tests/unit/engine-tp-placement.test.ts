import { describe, expect, test } from "bun:test";
import {
  chooseGroupDevices,
  groupShareBytes,
  type PlacementDevice,
} from "../../src/neuron/engine/tp-placement.ts";

const dev = (id: string, over: Partial<PlacementDevice> = {}): PlacementDevice => ({
  id,
  kind: "cpu",
  free: 1000,
  poisoned: false,
  busy: false,
  ...over,
});

describe("chooseGroupDevices", () => {
  test("takes the first usable devices, leader first, skipping poisoned, busy and full ones", () => {
    const devices = [
      dev("cpu-0", { busy: true }),
      dev("cpu-1", { poisoned: true }),
      dev("cpu-2", { free: 10 }),
      dev("cpu-3"),
      dev("cpu-4"),
    ];
    expect(chooseGroupDevices(devices, { modelId: "m", count: 2, needBytes: 1000 }).map((d) => d.id)).toEqual(
      ["cpu-3", "cpu-4"],
    );
  });

  test("too few devices on the node, or too few free, are different errors", () => {
    expect(() => chooseGroupDevices([dev("cpu-0")], { modelId: "m", count: 2, needBytes: 1 })).toThrow(
      "asks for 2 devices; this neuron has 1",
    );
    expect(() =>
      chooseGroupDevices([dev("cpu-0"), dev("cpu-1", { busy: true })], {
        modelId: "m",
        count: 2,
        needBytes: 1,
      }),
    ).toThrow(expect.objectContaining({ code: "insufficient_memory" }));
  });

  test("explicit devices are taken in order and must be usable", () => {
    const devices = [dev("cpu-0"), dev("cpu-1"), dev("cpu-2", { busy: true })];
    const pick = (ids: string[]) =>
      chooseGroupDevices(devices, { modelId: "m", count: ids.length, deviceIds: ids, needBytes: 1 });
    expect(pick(["cpu-1", "cpu-0"]).map((d) => d.id)).toEqual(["cpu-1", "cpu-0"]);
    expect(() => pick(["cpu-0", "cpu-2"])).toThrow(expect.objectContaining({ code: "conflict" }));
    expect(() => pick(["cpu-0", "cpu-0"])).toThrow("listed twice");
    expect(() => pick(["cpu-0", "cuda-dev-9"])).toThrow(expect.objectContaining({ code: "not_found" }));
  });
});

describe("groupShareBytes", () => {
  test("a CPU group charges its leader (it runs the model); a CUDA group splits evenly", () => {
    const cpu = { kind: "cpu" as const, deviceIds: ["cpu-0", "cpu-1"] };
    expect([groupShareBytes(100, cpu, "cpu-0"), groupShareBytes(100, cpu, "cpu-1")]).toEqual([100, 0]);
    const cuda = { kind: "cuda" as const, deviceIds: ["cuda-dev-0", "cuda-dev-1"] };
    expect([groupShareBytes(100, cuda, "cuda-dev-0"), groupShareBytes(100, cuda, "cuda-dev-2")]).toEqual([
      50, 0,
    ]);
  });
});
