import { describe, expect, test } from "bun:test";
import { plainGreedy } from "../../src/neuron/engine/batch-scheduler.ts";
import type { GenerateParams } from "../../src/neuron/engine/types.ts";

const params = (sampling: Omit<GenerateParams, "prompt">): GenerateParams => ({ prompt: "x", ...sampling });

// A sequence marked greedy is sampled by shim_sample_greedy instead of its chain: only right when the
// chain shim_sampler_new builds holds llama.cpp's greedy sampler and nothing else.
describe("which sequences take the greedy scan instead of the sampler chain", () => {
  test("temperature 0 without bias or penalties does", () => {
    expect(plainGreedy(params({ temperature: 0 }), 0)).toBe(true);
    expect(
      plainGreedy(params({ temperature: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 }), 0),
    ).toBe(true);
    // Penalties over no tokens are no penalties (the chain leaves them out too).
    expect(plainGreedy(params({ temperature: 0, penaltyLastN: 0, repeatPenalty: 1.3 }), 0)).toBe(true);
  });

  test("sampling, a logit bias or any penalty keeps the chain", () => {
    expect(plainGreedy(params({}), 0)).toBe(false);
    expect(plainGreedy(params({ temperature: 0.7 }), 0)).toBe(false);
    expect(plainGreedy(params({ temperature: 0 }), 1)).toBe(false);
    expect(plainGreedy(params({ temperature: 0, repeatPenalty: 1.1 }), 0)).toBe(false);
    expect(plainGreedy(params({ temperature: 0, frequencyPenalty: 0.5 }), 0)).toBe(false);
    expect(plainGreedy(params({ temperature: 0, presencePenalty: -0.5 }), 0)).toBe(false);
  });
});
