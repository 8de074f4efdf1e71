/**
 * Issue 18 §4: slow readers held decode slots without limit (four clients
 * reading 1 byte/s starved every other request for 118 s). Backpressure
 * pauses a sequence whose reader falls behind; now a sequence paused for
 * neuron.stall_timeout_s is ended, its slot goes to the next request, and
 * the slow reader gets an error event after what was already buffered.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { DevicePool } from "../../src/neuron/engine/device-pool.ts";
import type { GenerationEvent } from "../../src/neuron/engine/types.ts";
import { ensureDemoModel } from "../../src/neuron/gguf/tiny-model.ts";
import { TINY_SPECIAL_TOKENS } from "../../src/neuron/gguf/tiny-vocab.ts";

const NEVER_END = { [TINY_SPECIAL_TOKENS.imEnd]: -1000, [TINY_SPECIAL_TOKENS.eos]: -1000 };

let pool: DevicePool;
let onPaused: (() => void) | undefined;

beforeAll(async () => {
  const modelPath = await ensureDemoModel("tests/.tmp/models");
  pool = await DevicePool.start({
    threads: 1,
    stallTimeoutMs: 200,
    observer: { sequencePaused: () => onPaused?.() },
  });
  // One slot: while the slow reader holds it, every other request waits.
  await pool.load({ id: "tiny", path: modelPath, contextSize: 2048, slots: 1 });
});

afterAll(async () => {
  await pool?.close();
});

async function collect(stream: ReadableStream<GenerationEvent>): Promise<GenerationEvent[]> {
  const events: GenerationEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

test("a reader that stops reading loses its slot after the stall time, with an error; others are served", async () => {
  const paused = new Promise<void>((resolve) => {
    onPaused = resolve;
  });
  const slow = pool
    .generate("tiny", { prompt: "Tell me about the baker.", maxTokens: 1500, logitBias: NEVER_END })
    .getReader();
  expect((await slow.read()).done).toBe(false);
  await paused;
  // Queued behind the slow reader's only slot: served once the stall frees it.
  const other = await collect(pool.generate("tiny", { prompt: "Hello", maxTokens: 4 }));
  expect(other.at(-1)?.type).toBe("done");
  const rest: GenerationEvent[] = [];
  for (;;) {
    const next = await slow.read();
    if (next.done) break;
    rest.push(next.value);
  }
  expect(rest.filter((event) => event.type === "text").length).toBeGreaterThan(0);
  const last = rest.at(-1);
  expect(last?.type).toBe("error");
  expect(last?.type === "error" ? last.error.message : "").toContain("neuron.stall_timeout_s");
});
