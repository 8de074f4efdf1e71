/**
 * The rank side of a tensor-parallel group, for a device Worker to embed: it
 * owns the rank's communicator, runs the per-step lockstep collective, marks
 * the forward in the control block for the flight recorder, and applies
 * injected faults at the points a real device would fail.
 */
import { loadNccl } from "../../../ffi/nccl.ts";
import { CortexError } from "../../core/errors.ts";
import type { Communicator, CommunicatorHandle, CommunicatorInit } from "./communicator.ts";
import { type ControlView, controlView, setPhase } from "./control-block.ts";
import {
  enactHang,
  type FaultPlan,
  NO_FAULTS,
  parseFaultSpec,
  shouldHangCollective,
  shouldHangForward,
  shouldRaiseDeviceError,
} from "./fault-injection.ts";
import { initCommunicator } from "./open-communicator.ts";
import type { TpRankCall } from "./rank-client.ts";

export class TpRankRuntime {
  private comm: Communicator | undefined;
  private control: ControlView | undefined;
  private faults: FaultPlan = NO_FAULTS;

  get rank(): number | undefined {
    return this.comm?.rank;
  }

  /** Joins the group (blocks this Worker until the backend says so); returns the handle for the pool. */
  join(init: CommunicatorInit, faultSpec = ""): CommunicatorHandle {
    if (this.comm)
      throw new CortexError("conflict", "this Worker already belongs to a tensor-parallel group");
    this.faults = parseFaultSpec(faultSpec);
    this.control = controlView(init.control);
    this.comm = initCommunicator(init);
    return this.comm.handle();
  }

  /**
   * The per-step lockstep/liveness collective: every rank contributes its
   * step number; a sum other than size × step means the ranks disagree.
   * Blocks until all ranks arrive or the group is aborted.
   */
  lockstep(step: number): void {
    const { comm, control } = this.joined();
    setPhase(control, comm.rank, "idle", step);
    const hang = shouldHangCollective(this.faults, comm.rank, step);
    if (hang) {
      setPhase(control, comm.rank, "collective", step);
      enactHang(hang, control);
      throw new CortexError(
        "device_fault",
        `injected hang-collective on rank ${comm.rank} ended by an abort`,
      );
    }
    const sum = comm.allReduce(step, "sum");
    if (sum !== step * comm.size) {
      throw new CortexError("device_fault", `ranks out of lockstep at step ${step} (sum ${sum})`, {
        details: { rank: comm.rank, step, sum },
      });
    }
  }

  /** Runs the leader's forward for `step`, with its phase recorded and forward faults applied. */
  forward<T>(step: number, run: () => T): T {
    const { comm, control } = this.joined();
    setPhase(control, comm.rank, "forward", step);
    try {
      const hang = shouldHangForward(this.faults, comm.rank, step);
      if (hang) {
        enactHang(hang, control);
        throw new CortexError("device_fault", `injected hang-forward on rank ${comm.rank} ended by an abort`);
      }
      if (shouldRaiseDeviceError(this.faults, comm.rank, step)) {
        throw new CortexError("device_fault", `injected device error on rank ${comm.rank} at step ${step}`);
      }
      return run();
    } finally {
      setPhase(control, comm.rank, "idle");
    }
  }

  /** Leaves the group; idempotent, and a no-op on the communicator after an abort. */
  leave(): void {
    const comm = this.comm;
    this.comm = undefined;
    this.control = undefined;
    comm?.destroy();
  }

  private joined(): { comm: Communicator; control: ControlView } {
    if (!this.comm || !this.control)
      throw new CortexError("conflict", "this Worker is not in a tensor-parallel group");
    return { comm: this.comm, control: this.control };
  }
}

type TpStepCall = Extract<TpRankCall, { type: "tp-step" }>;

/**
 * Answers the rank messages every rank Worker handles alike (tp/rank-protocol.ts).
 * `step` answers `tp-step`, the one that differs: the engine's followers only
 * join the collective, the reference Worker also runs its stand-in forward.
 */
export function answerRankCall(
  rank: TpRankRuntime,
  call: TpRankCall,
  step: (call: TpStepCall) => unknown,
): unknown {
  switch (call.type) {
    case "tp-unique-id":
      return loadNccl(call.libraryPath).getUniqueId();
    case "tp-join":
      return rank.join(call.init, call.faults);
    case "tp-step":
      return step(call);
    case "tp-leave":
    case "unload":
      rank.leave();
      return undefined;
    case "ping":
      return "pong";
    default: {
      const unknown: never = call;
      throw new CortexError("invalid_request", `unknown tp request ${JSON.stringify(unknown)}`);
    }
  }
}
