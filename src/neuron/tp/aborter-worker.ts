/**
 * The aborter Worker: runs the abort calls off the main thread, because
 * ncclCommAbort on a sick device can itself hang, and the main thread must
 * stay free to time it and escalate to Stage 2. Reports each rank as it
 * starts and finishes, so a hang names the rank it hung on.
 */
import { loadNccl } from "../../../ffi/nccl.ts";
import type { AborterEvent, AborterRequest } from "./aborter-protocol.ts";
import { abortCommunicatorHandle } from "./open-communicator.ts";

declare const self: Worker;

function send(event: AborterEvent): void {
  self.postMessage(event);
}

self.onmessage = (message: MessageEvent<AborterRequest>) => {
  const request = message.data;
  switch (request.type) {
    case "warm": {
      try {
        for (const path of request.libraryPaths) loadNccl(path);
        send({ type: "warmed" });
      } catch (error) {
        send({ type: "warmed", error: (error as Error).message });
      }
      return;
    }
    case "abort": {
      for (const handle of request.handles) {
        send({ type: "rank-start", id: request.id, rank: handle.rank });
        const started = performance.now();
        try {
          const outcome = abortCommunicatorHandle(handle);
          send({
            type: "rank-done",
            id: request.id,
            rank: handle.rank,
            outcome,
            ms: performance.now() - started,
          });
        } catch (error) {
          send({
            type: "rank-done",
            id: request.id,
            rank: handle.rank,
            outcome: "error",
            ms: performance.now() - started,
            error: (error as Error).message,
          });
        }
      }
      send({ type: "done", id: request.id });
      return;
    }
    default: {
      const never: never = request;
      throw new TypeError(`unknown aborter request ${JSON.stringify(never)}`);
    }
  }
};
