/**
 * The probes a Kubernetes neuron pod uses (deploy/helm/cortex): /live and
 * /ready answer without the token, and /live keeps answering while a
 * multi-device step hangs and through the recovery that follows, so the
 * kubelet never kills a neuron that is about to recover by itself
 * (docs/RECOVERY.md). Real neuron, two CPU devices, the tiny model, an
 * injected hung collective; it waits on the stream and the watchdog's log.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { NeuronSection } from "../../src/core/config/config-schema.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";
import { type RunningNeuron, startNeuron } from "../../src/neuron/start-neuron.ts";
import { noEndBias } from "./helpers/real-fleet.ts";

const MODELS = `${import.meta.dir}/../.tmp/models`;
const TOKEN = "probe-secret";
// Long enough that the probes below answer well inside the hang, short enough to keep the file quick.
const STEP_TIMEOUT_S = 5;

let neuron: RunningNeuron;
let noEnd: Record<string, number> = {};
const lines: string[] = [];
const waiters: Array<{ text: string; resolve: () => void }> = [];

function logLine(line: string): void {
  lines.push(line);
  for (const waiter of [...waiters])
    if (line.includes(waiter.text)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
}

function logged(text: string): Promise<void> {
  if (lines.some((line) => line.includes(text))) return Promise.resolve();
  return new Promise((resolve) => waiters.push({ text, resolve }));
}

/** `token` null: no authorization header at all, as the kubelet sends. */
function api(path: string, body?: unknown, token: string | null = TOKEN): Promise<Response> {
  return fetch(`${neuron.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      "content-type": "application/json",
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

beforeAll(async () => {
  noEnd = await noEndBias(await ensureDemoModel(MODELS));
  neuron = await startNeuron({
    config: NeuronSection.parse({
      models_dir: MODELS,
      auth_token: TOKEN,
      cpu_devices: 2,
      step_timeout_s: STEP_TIMEOUT_S,
      stage2_grace_s: 10,
    }),
    listen: { hostname: "127.0.0.1", port: 0 },
    faultInjection: "hang-collective:rank=1,step=3",
    pool: {
      tpLogger: { error: logLine, warn: logLine, info: logLine, debug: () => {} },
      onFatal: (report) => logLine(`UNEXPECTED STAGE 2 ${report.reason}`),
    },
  });
}, 60_000);

afterAll(async () => {
  await neuron?.stop();
});

describe("neuron probes", () => {
  test("/live and /ready answer without the token; the API still asks for it", async () => {
    const live = await api("/live", undefined, null);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: "alive" });
    const ready = await api("/ready", undefined, null);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ok", ready: true });
    expect((await api("/models", undefined, null)).status).toBe(401);
    expect((await api("/metrics", undefined, "wrong")).status).toBe(401);
  });

  test("/live answers while a step hangs and after the group recovered; /ready stays 200 (the other models serve)", async () => {
    const load = await api("/models/load", {
      id: "tiny-tp",
      file: TINY_MODEL_FILE,
      deviceCount: 2,
      contextSize: 512,
      slots: 1,
    });
    expect(load.status).toBe(201);
    const response = await api("/v1/chat/completions", {
      model: "tiny-tp",
      messages: [{ role: "user", content: "Tell me about the garden." }],
      temperature: 0,
      max_tokens: 20,
      logit_bias: noEnd,
      stream: true,
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    // Step 2's token is out: step 3 is the one whose collective rank 1 never joins.
    while (!text.includes('"content"')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended before its first token: ${text}`);
      text += decoder.decode(value, { stream: true });
    }
    const live = await api("/live", undefined, null);
    const ready = await api("/ready", undefined, null);
    // The hang is not over yet: the stream is open and the watchdog has not fired.
    expect(lines.filter((line) => line.includes("aborting"))).toEqual([]);
    expect(live.status).toBe(200);
    expect(ready.status).toBe(200);

    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    expect(text).toContain("tp watchdog: step 3 of tiny-tp timed out");
    await logged("Stage 1 recovery complete");
    expect((await api("/live", undefined, null)).status).toBe(200);
    const after = await api("/ready", undefined, null);
    expect(after.status).toBe(200);
    expect(lines.filter((line) => line.startsWith("UNEXPECTED"))).toEqual([]);
  }, 60_000);

  // Last: the neuron stops at the end of its drain.
  test("while a neuron drains (SIGTERM), /ready is 503 so the Service drops it, and /live stays 200", async () => {
    expect((await api("/models/load", { id: "tiny", file: TINY_MODEL_FILE, slots: 1 })).status).toBe(201);
    const response = await api("/v1/chat/completions", {
      model: "tiny",
      messages: [{ role: "user", content: "Tell me about the garden." }],
      max_tokens: 2000,
      logit_bias: noEnd,
      stream: true,
    });
    const reader = response.body!.getReader();
    // A request in flight keeps the drain going.
    expect((await reader.read()).done).toBe(false);
    const drained = neuron.drain(60_000);
    const ready = await api("/ready", undefined, null);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: "draining", ready: false });
    expect((await api("/live", undefined, null)).status).toBe(200);
    await reader.cancel();
    await drained;
  }, 60_000);
});
