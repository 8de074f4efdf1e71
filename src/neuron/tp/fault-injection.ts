/**
 * Fault injection for the tensor-parallel path, so CI can drive the watchdog
 * and both recovery stages on CPU. Off unless explicitly asked for with
 * `--fault-injection <spec>` or `CORTEX_FAULT_INJECTION=<spec>`.
 *
 * Spec: comma-separated faults, each `kind[:key=value]`; a bare `key=value`
 * item adds a parameter to the fault before it.
 *   hang-collective:rank=1            rank 1 never joins the step's collective (an abort frees it)
 *   hang-forward:rank=0,step=3        the leader's forward of step 3 hangs (an abort frees it)
 *   hang-forward:abort=ignore         a hang no abort reaches (a kernel gone astray: Stage 2)
 *   device-error:rank=0,step=5        the step fails with a device fault
 * `rank` absent = every rank; `step` absent = every step (steps count from 1).
 */
import { consola } from "consola";
import { CortexError } from "../../core/errors.ts";
import { type ControlView, H_GEN, isGroupAborted } from "./control-block.ts";

export const FAULT_KINDS = ["hang-collective", "hang-forward", "device-error"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Fault {
  kind: FaultKind;
  rank?: number;
  step?: number;
  /** "ignore": the hang does not end on abort. */
  abort: "honor" | "ignore";
}

export interface FaultPlan {
  readonly faults: readonly Fault[];
  /** The spec as given, for the startup warning and for passing to Workers. */
  readonly spec: string;
}

export const NO_FAULTS: FaultPlan = Object.freeze({ faults: Object.freeze([]), spec: "" });

function isFaultKind(value: string): value is FaultKind {
  return (FAULT_KINDS as readonly string[]).includes(value);
}

function invalid(spec: string, message: string): CortexError {
  return new CortexError("invalid_request", `fault injection spec "${spec}": ${message}`, {
    param: "fault-injection",
  });
}

function applyParam(spec: string, fault: Fault, item: string): void {
  const eq = item.indexOf("=");
  const key = item.slice(0, eq).trim();
  const value = item.slice(eq + 1).trim();
  switch (key) {
    case "rank":
    case "step": {
      const n = Number(value);
      const min = key === "rank" ? 0 : 1;
      if (!/^\d+$/.test(value) || n < min)
        throw invalid(spec, `${key} must be an integer >= ${min}, got "${value}"`);
      fault[key] = n;
      return;
    }
    case "abort":
      if (value !== "honor" && value !== "ignore") throw invalid(spec, `abort must be honor or ignore`);
      fault.abort = value;
      return;
    default:
      throw invalid(spec, `unknown parameter "${key}" (rank, step, abort)`);
  }
}

/** Parses a spec; throws CortexError("invalid_request") naming what is wrong. Empty spec = no faults. */
export function parseFaultSpec(spec: string): FaultPlan {
  const faults: Fault[] = [];
  for (const raw of spec.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const colon = item.indexOf(":");
    const head = colon === -1 ? item : item.slice(0, colon);
    if (colon === -1 && head.includes("=")) {
      const last = faults.at(-1);
      if (!last) throw invalid(spec, `parameter "${item}" before any fault`);
      applyParam(spec, last, item);
      continue;
    }
    const kind = head.trim();
    if (!isFaultKind(kind)) throw invalid(spec, `unknown fault "${kind}" (${FAULT_KINDS.join(", ")})`);
    const fault: Fault = { kind, abort: "honor" };
    if (colon !== -1) {
      for (const param of item.slice(colon + 1).split(";")) {
        if (param.trim() === "") continue;
        if (!param.includes("=")) throw invalid(spec, `expected key=value, got "${param}"`);
        applyParam(spec, fault, param);
      }
    }
    faults.push(fault);
  }
  return Object.freeze({ faults: Object.freeze(faults), spec: faults.length === 0 ? "" : spec });
}

/** Reads `--fault-injection <spec>` / `--fault-injection=<spec>`, else CORTEX_FAULT_INJECTION; neither = none. */
export function faultPlanFrom(argv: readonly string[], env: Record<string, string | undefined>): FaultPlan {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--fault-injection") {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) throw invalid("", "--fault-injection needs a spec");
      return parseFaultSpec(next);
    }
    if (arg.startsWith("--fault-injection=")) return parseFaultSpec(arg.slice("--fault-injection=".length));
  }
  return parseFaultSpec(env.CORTEX_FAULT_INJECTION ?? "");
}

/** Logs the active plan once at startup, so a neuron failing on purpose says so. */
export function announceFaultPlan(
  plan: FaultPlan,
  warn: (line: string) => void = (l) => consola.warn(l),
): void {
  if (plan.faults.length === 0) return;
  warn(
    `tp fault injection is ON (${plan.spec}); this neuron will fail on purpose. Never use it in production.`,
  );
}

function find(plan: FaultPlan, kind: FaultKind, rank: number, step: number): Fault | undefined {
  return plan.faults.find(
    (f) =>
      f.kind === kind &&
      (f.rank === undefined || f.rank === rank) &&
      (f.step === undefined || f.step === step),
  );
}

/** Hook for a rank about to enter step `step`'s collective. */
export function shouldHangCollective(plan: FaultPlan, rank: number, step: number): Fault | undefined {
  return find(plan, "hang-collective", rank, step);
}

/** Hook for the leader about to run step `step`'s forward. */
export function shouldHangForward(plan: FaultPlan, rank: number, step: number): Fault | undefined {
  return find(plan, "hang-forward", rank, step);
}

export function shouldRaiseDeviceError(plan: FaultPlan, rank: number, step: number): Fault | undefined {
  return find(plan, "device-error", rank, step);
}

/**
 * Enacts an injected hang on the calling Worker thread: blocks like a wedged
 * device until the group is aborted, or forever when the fault ignores aborts.
 * Returns only after an abort.
 */
export function enactHang(fault: Fault, control: ControlView): void {
  if (fault.abort === "ignore") {
    const never = new Int32Array(new SharedArrayBuffer(4));
    for (;;) Atomics.wait(never, 0, 0);
  }
  while (!isGroupAborted(control)) {
    const gen = Atomics.load(control.i32, H_GEN);
    if (isGroupAborted(control)) break;
    Atomics.wait(control.i32, H_GEN, gen);
  }
}
