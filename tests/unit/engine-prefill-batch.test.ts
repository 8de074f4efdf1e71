import { expect, test } from "bun:test";
import { MIN_PREFILL_BATCH, prefillFrom } from "../../src/neuron/engine/slot-kv.ts";

test.each([
  // [prompt, reusable, prefill starts at]
  [16_000, 15_964, 16_000 - MIN_PREFILL_BATCH], // 36 new tokens: re-evaluate up to one fast batch
  [16_000, 15_848, 15_848], // 152 new tokens: already a batched prefill
  [16_000, 15_999, 15_999], // an exact repeat: only the last token, as before
  [16_000, 15_997, 15_997], // 3 new tokens: the per-token path is as cheap
  [40, 30, 30], // a short KV: the per-token path is cheap, nothing re-evaluated
  [1_100, 1_060, 1_100 - MIN_PREFILL_BATCH], // from ~1k tokens of KV on, padded
  [1_000, 0, 0], // nothing reusable
])("prompt %d, %d reusable → prefill from %d", (prompt, reusable, from) => {
  expect(prefillFrom(prompt, reusable)).toBe(from);
});
