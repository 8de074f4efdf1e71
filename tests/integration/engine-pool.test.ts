import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import { DevicePool } from "../../src/neuron/engine/device-pool.ts";
import type { GenerateParams, GenerationEvent } from "../../src/neuron/engine/types.ts";
import { ensureDemoModel } from "../../src/neuron/gguf/tiny-model.ts";
import { TINY_SPECIAL_TOKENS } from "../../src/neuron/gguf/tiny-vocab.ts";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";

/** Bans both end-of-generation tokens so the tiny model talks until max_tokens. */
const NEVER_END = { [TINY_SPECIAL_TOKENS.imEnd]: -1000, [TINY_SPECIAL_TOKENS.eos]: -1000 };

let modelPath: string;
let pool: DevicePool;
let prompt: string;

/** Told when the pool pauses a sequence because its reader fell behind (set by the test that waits for it). */
let onPaused: ((modelId: string) => void) | undefined;

async function collect(stream: ReadableStream<GenerationEvent>): Promise<GenerationEvent[]> {
  const events: GenerationEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

function textOf(events: GenerationEvent[]): string {
  return events.map((e) => (e.type === "text" ? e.text : "")).join("");
}

function last(events: GenerationEvent[]): GenerationEvent {
  const event = events.at(-1);
  if (!event) throw new Error("no events");
  return event;
}

function generate(id: string, params: Partial<GenerateParams>, signal?: AbortSignal) {
  return pool.generate(id, { prompt, temperature: 0, ...params }, signal);
}

function caught(fn: () => unknown): CortexError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CortexError) return error;
    throw error;
  }
  throw new Error("expected a CortexError");
}

beforeAll(async () => {
  modelPath = await ensureDemoModel("tests/.tmp/models");
  pool = await DevicePool.start({ threads: 1, observer: { sequencePaused: (id) => onPaused?.(id) } });
  await pool.load({ id: "tiny", path: modelPath, contextSize: 2048, slots: 4 });
  const info = pool.model("tiny")!;
  prompt = renderChatTemplate(
    info.chatTemplate!,
    { messages: [{ role: "user", content: "Tell me about the baker." }] },
    info,
  );
});

afterAll(async () => {
  await pool.close();
});

describe("DevicePool on the tiny model", () => {
  test("reports the CPU device and the loaded model's memory", () => {
    const [device] = pool.devices();
    expect(device?.id).toBe("cpu-0");
    expect(device?.poisoned).toBe(false);
    const info = pool.model("tiny");
    expect(info?.memoryBytes).toBeGreaterThan(0);
    expect(info?.chatTemplate).toContain("<|im_start|>");
    expect(pool.models()[0]).toMatchObject({ id: "tiny", state: "ready", inFlight: 0, slots: 4 });
  });

  test("loading the same id and file again is idempotent", async () => {
    const again = await pool.load({ id: "tiny", path: modelPath, contextSize: 2048, slots: 4 });
    expect(again.alreadyLoaded).toBe(true);
    expect(again.info.loadedAt).toBe(pool.model("tiny")!.loadedAt);
  });

  test("greedy generation ends its turn with exact usage", async () => {
    const events = await collect(generate("tiny", { maxTokens: 200 }));
    const done = last(events);
    expect(done.type).toBe("done");
    if (done.type !== "done") return;
    expect(done.finishReason).toBe("stop");
    expect(done.usage.promptTokens).toBe(await pool.countTokens("tiny", prompt));
    expect(done.usage.completionTokens).toBeGreaterThan(0);
    expect(textOf(events).length).toBeGreaterThan(0);
  });

  test("temperature 0 is deterministic, and a slow reader gets the same text", async () => {
    const a = textOf(await collect(generate("tiny", { maxTokens: 60, logitBias: NEVER_END })));
    const b = textOf(await collect(generate("tiny", { maxTokens: 60, logitBias: NEVER_END })));
    const reader = generate("tiny", { maxTokens: 60, logitBias: NEVER_END }).getReader();
    let c = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (value.type === "text") c += value.text;
      await Bun.sleep(1);
    }
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  test("max_tokens ends with finish reason length", async () => {
    const done = last(await collect(generate("tiny", { maxTokens: 5, logitBias: NEVER_END })));
    expect(done).toMatchObject({ type: "done", finishReason: "length", usage: { completionTokens: 5 } });
  });

  test("a stop string ends generation and is never emitted", async () => {
    const full = textOf(await collect(generate("tiny", { maxTokens: 40, logitBias: NEVER_END })));
    const words = full.trim().split(/\s+/);
    const stop = ` ${words[3]} ${words[4]}`;
    expect(full).toContain(stop);
    const events = await collect(generate("tiny", { maxTokens: 40, logitBias: NEVER_END, stop: [stop] }));
    expect(textOf(events)).toBe(full.slice(0, full.indexOf(stop)));
    expect(last(events)).toMatchObject({ type: "done", finishReason: "stop", stopSequence: stop });
  });

  test("concurrent sequences are decoded together", async () => {
    const before = await pool.stats("cpu-0");
    const runs = await Promise.all(
      [0, 1, 2, 3].map(() => collect(generate("tiny", { maxTokens: 100, logitBias: NEVER_END }))),
    );
    const after = await pool.stats("cpu-0");
    for (const events of runs) expect(last(events)).toMatchObject({ finishReason: "length" });
    const sampled = after.tokensSampled - before.tokensSampled;
    const steps = after.decodeCalls - before.decodeCalls;
    expect(sampled).toBe(400);
    // One sequence at a time would take 400 decode steps; batched it is about 100.
    expect(steps).toBeLessThan(200);
    // Batching must not change what each sequence says.
    const texts = runs.map(textOf);
    expect(new Set(texts).size).toBe(1);
  });

  test("a consumer that stops reading pauses its sequence instead of buffering it all", async () => {
    const before = (await pool.stats("cpu-0")).tokensSampled;
    const pausedNow = new Promise((resolve) => {
      onPaused = resolve;
    });
    const stream = generate("tiny", { maxTokens: 1000, logitBias: NEVER_END });
    expect(await pausedNow).toBe("tiny");
    onPaused = undefined;
    // The Worker takes its messages in order: stats asked after the pause are read once it has paused.
    const first = (await pool.stats("cpu-0")).tokensSampled;
    // Other work on the same Worker steps on; the paused sequence does not take a token meanwhile.
    const other = await collect(generate("tiny", { maxTokens: 30, logitBias: NEVER_END }));
    expect(last(other)).toMatchObject({ finishReason: "length" });
    const second = (await pool.stats("cpu-0")).tokensSampled;
    expect(second - first).toBe(30);
    expect(first - before).toBeLessThan(200);
    expect(last(await collect(stream))).toMatchObject({
      finishReason: "length",
      usage: { completionTokens: 1000 },
    });
  });

  test("a reader that fell behind gets the same text, in fewer pieces", async () => {
    const expected = textOf(await collect(generate("tiny", { maxTokens: 300, logitBias: NEVER_END })));
    const pausedNow = new Promise((resolve) => {
      onPaused = resolve;
    });
    const stream = generate("tiny", { maxTokens: 300, logitBias: NEVER_END });
    await pausedNow;
    onPaused = undefined;
    const events = await collect(stream);
    expect(last(events)).toMatchObject({ finishReason: "length", usage: { completionTokens: 300 } });
    expect(textOf(events)).toBe(expected);
    // The tokens that waited while it was paused came joined, not one event each.
    expect(events.filter((e) => e.type === "text").length).toBeLessThan(300 - 32);
  });

  test("a prompt longer than the context is refused with its counts", async () => {
    await pool.load({ id: "tiny-short", path: modelPath, contextSize: 32, slots: 1 });
    try {
      const long = `${prompt}${" baker".repeat(40)}`;
      const [only] = await collect(generate("tiny-short", { prompt: long }));
      expect(only?.type).toBe("error");
      if (only?.type !== "error") return;
      expect(only.error.code).toBe("context_length_exceeded");
      expect(only.error.details).toMatchObject({ context_size: 32 });

      const promptTokens = await pool.countTokens("tiny-short", prompt);
      const [overflow] = await collect(generate("tiny-short", { maxTokens: 100 }));
      expect(overflow).toMatchObject({
        type: "error",
        error: { code: "context_length_exceeded", details: { prompt_tokens: promptTokens, max_tokens: 100 } },
      });
      const clamped = last(
        await collect(
          generate("tiny-short", { maxTokens: 100, contextOverflow: "clamp", logitBias: NEVER_END }),
        ),
      );
      expect(clamped).toMatchObject({
        type: "done",
        finishReason: "length",
        usage: { completionTokens: 32 - promptTokens },
      });
    } finally {
      await pool.unload("tiny-short");
    }
  });

  test("cancelling frees the slot within a step", async () => {
    await pool.load({ id: "tiny-one", path: modelPath, contextSize: 2048, slots: 1, maxQueue: 1 });
    try {
      const controller = new AbortController();
      const reader = generate(
        "tiny-one",
        { maxTokens: 1900, logitBias: NEVER_END },
        controller.signal,
      ).getReader();
      await reader.read();
      // One running, one waiting: a third is turned away.
      const waiting = collect(generate("tiny-one", { maxTokens: 3, logitBias: NEVER_END }));
      const busy = caught(() => generate("tiny-one", { maxTokens: 3 }));
      expect(busy.code).toBe("rate_limited");
      expect(busy.retryAfterS).toBeGreaterThan(0);
      expect(pool.modelStats("tiny-one")).toMatchObject({ inFlight: 1, queued: 1 });
      controller.abort();
      await expect(reader.read()).rejects.toBeDefined();
      expect(last(await waiting)).toMatchObject({ finishReason: "length", usage: { completionTokens: 3 } });
      expect(pool.modelStats("tiny-one")).toMatchObject({ inFlight: 0, queued: 0 });
    } finally {
      await pool.unload("tiny-one");
    }
  });

  test("unload waits for in-flight work and turns new requests away", async () => {
    await pool.load({ id: "tiny-unload", path: modelPath, contextSize: 2048, slots: 2 });
    const reader = generate("tiny-unload", { maxTokens: 200, logitBias: NEVER_END }).getReader();
    const first = await reader.read();
    const running = collect(
      new ReadableStream<GenerationEvent>({
        start: (controller) => {
          if (!first.done) controller.enqueue(first.value);
        },
        pull: async (controller) => {
          const next = await reader.read();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
      }),
    );
    const unloading = pool.unload("tiny-unload");
    expect(caught(() => generate("tiny-unload", {})).code).toBe("unavailable");
    expect(last(await running)).toMatchObject({ finishReason: "length", usage: { completionTokens: 200 } });
    await unloading;
    expect(pool.model("tiny-unload")).toBeUndefined();
    expect(caught(() => generate("tiny-unload", {})).code).toBe("model_not_found");
  });

  test("a forced unload ends running sequences with an error", async () => {
    await pool.load({ id: "tiny-force", path: modelPath, contextSize: 2048, slots: 1 });
    const reader = generate("tiny-force", { maxTokens: 1900, logitBias: NEVER_END }).getReader();
    await reader.read();
    await pool.unload("tiny-force", { force: true });
    let final: GenerationEvent | undefined;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      final = value;
    }
    expect(final).toMatchObject({ type: "error", error: { code: "unavailable" } });
    expect(pool.devices()[0]?.loadCycles).toBeGreaterThan(0);
  });

  test("a load that does not fit the memory cap is refused with 507", async () => {
    const capped = await DevicePool.start({ threads: 1, memoryLimitBytes: 1024 * 1024 });
    try {
      const error = await capped
        .load({ id: "big", path: modelPath, contextSize: 2048 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CortexError);
      expect((error as CortexError).status).toBe(507);
      expect(capped.models()).toEqual([]);
    } finally {
      await capped.close();
    }
  });
});

describe("device faults", () => {
  test("a native failure poisons the device, which the pool recycles by itself; its model is reported lost and loads again", async () => {
    const faulty = await DevicePool.start({ threads: 1, faultInjection: true });
    try {
      await faulty.load({ id: "tiny", path: modelPath, contextSize: 2048, slots: 2 });
      const threadBefore = faulty.devices()[0]!.threadId;
      const events = faulty.generate("tiny", {
        prompt,
        temperature: 0,
        maxTokens: 1900,
        logitBias: NEVER_END,
      });
      await faulty.injectFault("cpu-0");
      expect(last(await collect(events))).toMatchObject({ type: "error", error: { code: "device_fault" } });
      // Until the fresh Worker is up the model takes nothing: refused as faulted, or already gone.
      expect(["device_fault", "model_not_found"]).toContain(
        caught(() => faulty.generate("tiny", { prompt })).code,
      );

      // A load waits for the recovery; the model was dropped, so this is a fresh load.
      const reloaded = await faulty.load({ id: "tiny", path: modelPath, contextSize: 2048, slots: 1 });
      expect(reloaded.alreadyLoaded).toBe(false);
      expect(faulty.devices()[0]).toMatchObject({ poisoned: false, loadCycles: 0 });
      expect(faulty.devices()[0]!.threadId).not.toBe(threadBefore);
      expect(faulty.models()).toEqual([expect.objectContaining({ id: "tiny", state: "ready" })]);
      const done = last(await collect(faulty.generate("tiny", { prompt, temperature: 0, maxTokens: 4 })));
      expect(done.type).toBe("done");
    } finally {
      await faulty.close();
    }
  });

  test("recycling a device reloads its pinned models on the fresh Worker and drops the others", async () => {
    const pool2 = await DevicePool.start({ threads: 1 });
    try {
      await pool2.load({ id: "kept", path: modelPath, contextSize: 256, pinned: true });
      await pool2.load({ id: "loose", path: modelPath, contextSize: 256 });
      const threadBefore = pool2.devices()[0]!.threadId;
      await pool2.recycle("cpu-0");
      expect(pool2.devices()[0]!.threadId).not.toBe(threadBefore);
      expect(pool2.models()).toEqual([expect.objectContaining({ id: "kept", state: "ready", pinned: true })]);
      expect(pool2.model("kept")!.memoryBytes).toBeGreaterThan(0);
      const done = last(await collect(pool2.generate("kept", { prompt, temperature: 0, maxTokens: 4 })));
      expect(done.type).toBe("done");
      expect(caught(() => pool2.generate("loose", { prompt })).code).toBe("model_not_found");
    } finally {
      await pool2.close();
    }
  });

  test("close() stops every Worker and refuses further work", async () => {
    const short = await DevicePool.start({ threads: 1 });
    await short.load({ id: "tiny", path: modelPath, contextSize: 2048 });
    const pending = collect(short.generate("tiny", { prompt, maxTokens: 1900, logitBias: NEVER_END }));
    expect(short.workerCount).toBe(1);
    await short.close();
    expect(short.workerCount).toBe(0);
    expect(last(await pending).type).toBe("error");
    expect(caught(() => short.generate("tiny", { prompt })).code).toBe("unavailable");
  });
});
