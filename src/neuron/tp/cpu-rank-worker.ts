/**
 * A rank Worker with a stand-in forward: the reference implementation of the
 * tensor-parallel job messages (rank-protocol.ts) that the engine's device
 * Worker embeds, and what the CPU end-to-end tests run. Its forward is a
 * little arithmetic, not llama.
 */

import { currentThreadId } from "../../core/worker-thread.ts";
import { toEngineError } from "../engine/native-failure.ts";
import type { TpRankReady, TpRankReply, TpRankRequest } from "./rank-protocol.ts";
import { answerRankCall, TpRankRuntime } from "./rank-runtime.ts";

declare const self: Worker;

const runtime = new TpRankRuntime();

function fakeForward(tokens: number): number {
  let acc = 0;
  for (let i = 0; i < 1000 * Math.max(1, tokens); i++) acc = (acc + i * 31) % 1_000_003;
  return acc;
}

function handle(request: TpRankRequest): unknown {
  return answerRankCall(runtime, request, ({ step, tokens }) => {
    runtime.lockstep(step);
    if (runtime.rank !== 0) return { step };
    const value = runtime.forward(step, () => fakeForward(tokens));
    return { step, value };
  });
}

self.onmessage = (message: MessageEvent<TpRankRequest>) => {
  const request = message.data;
  let reply: TpRankReply;
  try {
    reply = { id: request.id, ok: true, value: handle(request) };
  } catch (error) {
    reply = { id: request.id, ok: false, error: toEngineError(error).toWire() };
  }
  self.postMessage(reply);
};

self.postMessage({ type: "ready", threadId: currentThreadId() } satisfies TpRankReady);
