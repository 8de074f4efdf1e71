/**
 * A rank Worker with a stand-in forward: the reference implementation of the
 * tensor-parallel job messages (rank-protocol.ts) that the engine's device
 * Worker embeds, and what the CPU end-to-end tests run. Its forward is a
 * little arithmetic, not llama.
 */

import { loadNccl } from "../../../ffi/nccl.ts";
import { CortexError, toCortexError } from "../../core/errors.ts";
import type { TpRankReady, TpRankReply, TpRankRequest } from "./rank-protocol.ts";
import { TpRankRuntime } from "./rank-runtime.ts";

declare const self: Worker;

const runtime = new TpRankRuntime();

function fakeForward(tokens: number): number {
  let acc = 0;
  for (let i = 0; i < 1000 * Math.max(1, tokens); i++) acc = (acc + i * 31) % 1_000_003;
  return acc;
}

function handle(request: TpRankRequest): unknown {
  switch (request.type) {
    case "tp-unique-id":
      return loadNccl(request.libraryPath).getUniqueId();
    case "tp-join":
      return runtime.join(request.init, request.faults);
    case "tp-step": {
      runtime.lockstep(request.step);
      if (runtime.rank !== 0) return { step: request.step };
      const value = runtime.forward(request.step, () => fakeForward(request.tokens));
      return { step: request.step, value };
    }
    case "tp-leave":
      runtime.leave();
      return undefined;
    case "ping":
      return "pong";
    case "unload":
      runtime.leave();
      return undefined;
    default: {
      const never: never = request;
      throw new CortexError("invalid_request", `unknown tp request ${JSON.stringify(never)}`);
    }
  }
}

self.onmessage = (message: MessageEvent<TpRankRequest>) => {
  const request = message.data;
  let reply: TpRankReply;
  try {
    reply = { id: request.id, ok: true, value: handle(request) };
  } catch (error) {
    reply = { id: request.id, ok: false, error: toCortexError(error).toWire() };
  }
  self.postMessage(reply);
};

self.postMessage({ type: "ready" } satisfies TpRankReady);
