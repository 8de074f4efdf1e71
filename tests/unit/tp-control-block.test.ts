import { describe, expect, test } from "bun:test";
import { groupHandles } from "../../src/neuron/tp/communicator.ts";
import {
  claimAbort,
  claimDestroy,
  completeAbort,
  controlView,
  createControlBlock,
  enterCall,
  isGroupAborted,
  leaveCall,
  publishLive,
  rankState,
  snapshotRanks,
} from "../../src/neuron/tp/control-block.ts";
import { abortShmRank, initShmCommunicator } from "../../src/neuron/tp/shm-communicator.ts";

function liveGroup(size = 2) {
  const view = controlView(createControlBlock(size, "nccl"));
  for (let r = 0; r < size; r++) publishLive(view, r, BigInt(0x1000 + r));
  return view;
}

describe("control block abort protocol", () => {
  test("exactly one claimant aborts; later claims and destroys are no-ops", () => {
    const view = liveGroup();
    const first = claimAbort(view, 0);
    expect(first).toMatchObject({ proceed: true, previous: "live", commPtr: 0x1000n });
    expect(claimAbort(view, 0)).toMatchObject({ proceed: false, previous: "aborting" });
    completeAbort(view, 0);
    expect(claimAbort(view, 0)).toMatchObject({ proceed: false, previous: "aborted" });
    expect(claimDestroy(view, 0, 0)).toBe(false);
    expect(rankState(view, 0)).toBe("aborted");
    expect(isGroupAborted(view)).toBe(true);
  });

  test("an abort during a library call wins, and the caller learns it when the call returns", () => {
    const view = liveGroup();
    expect(enterCall(view, 1)).toBe(true);
    expect(claimAbort(view, 1).proceed).toBe(true);
    completeAbort(view, 1);
    expect(leaveCall(view, 1)).toBe(false);
    expect(enterCall(view, 1)).toBe(false);
  });

  test("destroy of a live rank happens once and then refuses an abort", () => {
    const view = liveGroup();
    expect(claimDestroy(view, 0)).toBe(true);
    expect(claimDestroy(view, 0)).toBe(false);
    expect(claimAbort(view, 0)).toMatchObject({ proceed: false, previous: "destroyed" });
  });

  test("a rank aborted before it published its communicator cannot go live", () => {
    const view = controlView(createControlBlock(2, "nccl"));
    expect(claimAbort(view, 0)).toMatchObject({ proceed: false, previous: "uninit" });
    completeAbort(view, 0);
    expect(publishLive(view, 0, 0x2000n)).toBe(false);
  });

  test("the snapshot reads every rank without blocking", () => {
    const view = liveGroup(3);
    enterCall(view, 2);
    expect(snapshotRanks(view).map((r) => r.state)).toEqual(["live", "live", "busy"]);
  });

  test("rejects ranks outside the group and absurd sizes", () => {
    expect(() => createControlBlock(0, "shm")).toThrow(RangeError);
    expect(() => rankState(liveGroup(2), 2)).toThrow(RangeError);
  });
});

describe("shm communicator, single thread", () => {
  test("a group of one reduces to its own value; after an abort every call fails and a second abort is a no-op", () => {
    const control = createControlBlock(1, "shm");
    const comm = initShmCommunicator({ groupId: "g", rank: 0, control });
    expect(comm.allReduce(5)).toBe(5);
    expect(comm.allReduce(7, "max")).toBe(7);
    expect(comm.asyncError()).toBeUndefined();
    const [handle] = groupHandles({ backend: "shm", groupId: "g", size: 1, control });
    expect(abortShmRank(handle!.control, 0)).toBe("aborted");
    expect(abortShmRank(handle!.control, 0)).toBe("already");
    expect(() => comm.allReduce(1)).toThrow(/aborted|refused/);
    expect(comm.asyncError()?.reason).toBe("aborted");
    comm.destroy();
    comm.destroy();
  });

  test("the handle is structured-clonable and keeps pointing at the same shared memory", () => {
    const control = createControlBlock(2, "shm");
    const comm = initShmCommunicator({ groupId: "g2", rank: 1, control });
    const copy = structuredClone(comm.handle());
    expect(copy).toMatchObject({ backend: "shm", groupId: "g2", rank: 1, size: 2 });
    abortShmRank(copy.control, 1);
    expect(rankState(controlView(control), 1)).toBe("aborted");
  });
});
