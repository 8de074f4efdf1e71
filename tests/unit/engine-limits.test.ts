import { describe, expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import { completionBudget } from "../../src/neuron/engine/context-budget.ts";
import { estimateModelBytes, kvCacheBytes } from "../../src/neuron/engine/memory-estimate.ts";

function error(fn: () => unknown): CortexError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CortexError) return e;
  }
  throw new Error("expected a CortexError");
}

describe("completionBudget", () => {
  test.each([
    { promptTokens: 10, contextSize: 100, maxTokens: undefined, overflow: "error", budget: 90 },
    { promptTokens: 10, contextSize: 100, maxTokens: 20, overflow: "error", budget: 20 },
    { promptTokens: 10, contextSize: 100, maxTokens: 90, overflow: "error", budget: 90 },
    { promptTokens: 10, contextSize: 100, maxTokens: 500, overflow: "clamp", budget: 90 },
  ] as const)("$promptTokens + $maxTokens in $contextSize ($overflow) → $budget", (input) => {
    expect(completionBudget(input)).toBe(input.budget);
  });

  test("a prompt that fills the context is refused with its counts", () => {
    const e = error(() =>
      completionBudget({ promptTokens: 100, contextSize: 100, maxTokens: 1, overflow: "clamp" }),
    );
    expect(e.code).toBe("context_length_exceeded");
    expect(e.status).toBe(400);
    expect(e.details).toEqual({ prompt_tokens: 100, context_size: 100 });
  });

  test("max_tokens below 1 is a bad request, not a zero-length answer", () => {
    const e = error(() =>
      completionBudget({ promptTokens: 10, contextSize: 100, maxTokens: 0, overflow: "error" }),
    );
    expect(e.code).toBe("invalid_request");
    expect(e.param).toBe("max_tokens");
  });

  test("prompt + max_tokens over the context fails unless clamped", () => {
    const e = error(() =>
      completionBudget({ promptTokens: 10, contextSize: 100, maxTokens: 91, overflow: "error" }),
    );
    expect(e.code).toBe("context_length_exceeded");
    expect(e.param).toBe("max_tokens");
    expect(e.details).toEqual({ prompt_tokens: 10, max_tokens: 91, context_size: 100 });
  });
});

describe("memory estimate", () => {
  const shape = { nLayer: 32, nEmbd: 4096, nHead: 32, nHeadKv: 8, contextSize: 4096, slots: 1 };

  test("KV cache of a Llama-3-8B-like shape at 4k context is 512 MiB in f16", () => {
    expect(kvCacheBytes(shape)).toBe(512 * 1024 * 1024);
  });

  test("KV grows with slots, and the estimate covers weights plus KV", () => {
    expect(kvCacheBytes({ ...shape, slots: 4 })).toBe(4 * kvCacheBytes(shape));
    const total = estimateModelBytes({ ...shape, weightBytes: 4e9, nVocab: 128256, batchTokens: 512 });
    expect(total).toBeGreaterThan(4e9 + kvCacheBytes(shape));
  });
});
