import { describe, expect, test } from "bun:test";
import { canTransition, GROUP_STATES, GroupStateMachine } from "../../src/neuron/tp/group-state.ts";

describe("tp group state machine", () => {
  test.each([
    ["forming", "ready"],
    ["ready", "stepping"],
    ["stepping", "ready"],
    ["stepping", "aborting"],
    ["aborting", "poisoned"],
    ["poisoned", "recovering"],
    ["recovering", "gone"],
    ["aborting", "fatal"],
    ["poisoned", "fatal"],
    ["recovering", "fatal"],
  ] as const)("allows %s -> %s", (from, to) => {
    expect(canTransition(from, to)).toBe(true);
  });

  test.each([
    ["stepping", "gone"],
    ["aborting", "ready"],
    ["poisoned", "ready"],
    ["ready", "recovering"],
    ["recovering", "ready"],
  ] as const)("forbids %s -> %s (a poisoned group never serves again without recovery)", (from, to) => {
    expect(canTransition(from, to)).toBe(false);
  });

  test("fatal and gone are terminal", () => {
    for (const to of GROUP_STATES) {
      expect(canTransition("fatal", to)).toBe(false);
      expect(canTransition("gone", to)).toBe(false);
    }
  });

  test("transition is a compare-and-swap that reports each change once", () => {
    const seen: string[] = [];
    const machine = new GroupStateMachine((from, to, why) => seen.push(`${from}->${to}:${why}`));
    expect(machine.transition("forming", "ready", "joined")).toBe(true);
    expect(machine.transition("forming", "ready", "again")).toBe(false);
    expect(machine.transition("ready", "poisoned", "skip")).toBe(false);
    expect(machine.force("stepping", "step")).toBe(true);
    expect(seen).toEqual(["forming->ready:joined", "ready->stepping:step"]);
    expect(machine.state).toBe("stepping");
  });
});
