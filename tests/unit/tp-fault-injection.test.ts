import { describe, expect, test } from "bun:test";
import {
  announceFaultPlan,
  faultPlanFrom,
  NO_FAULTS,
  parseFaultSpec,
  shouldHangCollective,
  shouldHangForward,
  shouldRaiseDeviceError,
} from "../../src/neuron/tp/fault-injection.ts";

describe("fault injection spec", () => {
  test("is off unless asked for", () => {
    expect(faultPlanFrom([], {}).faults).toEqual([]);
    expect(faultPlanFrom(["neuron", "--port", "13131"], { CORTEX_FAULT_INJECTION: "" }).faults).toEqual([]);
    expect(shouldHangCollective(NO_FAULTS, 0, 1)).toBeUndefined();
  });

  test("parses the documented example, with bare key=value items attaching to the fault before them", () => {
    const plan = parseFaultSpec("hang-collective:rank=1,hang-forward,device-error:rank=0,step=5");
    expect(plan.faults).toEqual([
      { kind: "hang-collective", rank: 1, abort: "honor" },
      { kind: "hang-forward", abort: "honor" },
      { kind: "device-error", rank: 0, step: 5, abort: "honor" },
    ]);
  });

  test("semicolons separate parameters inside one item; abort=ignore marks an unabortable hang", () => {
    expect(parseFaultSpec("hang-forward:rank=0;step=3;abort=ignore").faults).toEqual([
      { kind: "hang-forward", rank: 0, step: 3, abort: "ignore" },
    ]);
  });

  test("the flag wins over the environment, in both spellings", () => {
    const env = { CORTEX_FAULT_INJECTION: "device-error" };
    expect(faultPlanFrom(["--fault-injection", "hang-forward"], env).faults[0]?.kind).toBe("hang-forward");
    expect(faultPlanFrom(["--fault-injection=hang-collective:rank=2"], env).faults[0]).toMatchObject({
      rank: 2,
    });
    expect(faultPlanFrom([], env).faults[0]?.kind).toBe("device-error");
  });

  test.each([
    ["hang-everything", /unknown fault "hang-everything"/],
    ["hang-forward:rank=-1", /rank must be an integer >= 0/],
    ["hang-forward:step=0", /step must be an integer >= 1/],
    ["hang-forward:abort=maybe", /abort must be honor or ignore/],
    ["hang-forward:color=red", /unknown parameter "color"/],
    ["rank=1", /before any fault/],
    ["hang-forward:rank", /expected key=value/],
  ])("rejects %s with a message that says what is wrong", (spec, message) => {
    expect(() => parseFaultSpec(spec)).toThrow(message);
  });

  test("a missing flag value is an error, not a silent no-op", () => {
    expect(() => faultPlanFrom(["--fault-injection"], {})).toThrow(/needs a spec/);
  });

  test("hooks match on rank and step; absent rank or step matches all", () => {
    const plan = parseFaultSpec("hang-collective:rank=1,step=3,hang-forward:rank=0,device-error:step=2");
    expect(shouldHangCollective(plan, 1, 3)).toBeDefined();
    expect(shouldHangCollective(plan, 1, 2)).toBeUndefined();
    expect(shouldHangCollective(plan, 0, 3)).toBeUndefined();
    expect(shouldHangForward(plan, 0, 99)).toBeDefined();
    expect(shouldHangForward(plan, 1, 1)).toBeUndefined();
    expect(shouldRaiseDeviceError(plan, 7, 2)).toBeDefined();
    expect(shouldRaiseDeviceError(plan, 7, 3)).toBeUndefined();
  });
});

describe("fault injection announcement", () => {
  test("an active plan is announced, an empty one is silent", () => {
    const lines: string[] = [];
    announceFaultPlan(NO_FAULTS, (l) => lines.push(l));
    announceFaultPlan(parseFaultSpec("hang-forward:rank=0"), (l) => lines.push(l));
    expect(lines).toEqual([expect.stringContaining("fault injection is ON (hang-forward:rank=0)")]);
  });
});
