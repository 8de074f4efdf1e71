/**
 * The neuron's prefill and decode measured inside it, for
 * bench/real-model-bench.ts to set against llama-bench `pp` (at the same
 * prompt length) and `tg`: the device Worker's own duration of the step
 * that decodes the whole prompt (one llama_decode over it, then the first
 * token's sampling), and the median of its one-token decode steps (each
 * with its sampling, detokenizing and event), as the engine's step
 * observer (the metrics' hook) reports them. No HTTP, no chat template: what
 * llama-bench times, plus the sampling it does not do. A median of per-token
 * steps also holds up better on a shared machine than a run's mean.
 *
 * Run as a child process, one per native set (CORTEX_NATIVE_DIR picks it;
 * one process loads one libllama). Prints one JSON line.
 *
 *   bun bench/neuron-steps.ts --model m.gguf --prompt 64 [--tokens 32] [--threads 1] [--reps 3]
 */
import { parseArgs } from "node:util";
import { DevicePool } from "../src/neuron/engine/device-pool.ts";
import type { StepObservation } from "../src/neuron/engine/types.ts";
import { median } from "./stats.ts";

/** The context shape `cortex serve` gives a model in real-model-bench.ts. */
const CONTEXT = 1024;
const SLOTS = 4;

export interface StepsResult {
  /** Prompt tokens as the neuron counted them (BOS included): llama-bench's `-p`. */
  promptTokens: number;
  /** Median of the prefill step's milliseconds. */
  stepMs: number;
  /** Median from `generate` to the first text event (tokenizing and the Worker hop included). */
  engineTtftMs: number;
  /** Median of the one-sequence, one-token decode steps' milliseconds. */
  decodeStepMs: number;
}

/** A prompt of about `n` tokens for either tokenizer (common English words are one token each). */
export function promptOf(n: number): string {
  const words = "the garden in the evening light is quiet and the river runs past the old stone wall".split(
    " ",
  );
  return Array.from({ length: n }, (_, i) => words[i % words.length]).join(" ");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      prompt: { type: "string", default: "64" },
      tokens: { type: "string", default: "32" },
      threads: { type: "string", default: "1" },
      reps: { type: "string", default: "3" },
    },
  });
  if (!values.model) throw new Error("--model is required");
  const steps: StepObservation[] = [];
  let stepped: (() => void) | undefined;
  const pool = await DevicePool.start({
    threads: Number(values.threads),
    observer: {
      step: (step) => {
        steps.push(step);
        stepped?.();
      },
    },
  });
  /** The step that decoded `tokens` at once; its report follows the sequence's last event. */
  const prefillStep = async (tokens: number): Promise<StepObservation> => {
    for (;;) {
      const found = steps.find((step) => step.tokens === tokens);
      if (found) return found;
      await new Promise<void>((resolve) => {
        stepped = resolve;
      });
    }
  };
  try {
    await pool.load({ id: "m", path: values.model, contextSize: CONTEXT, slots: SLOTS });
    const stepMs: number[] = [];
    const ttftMs: number[] = [];
    const decodeMs: number[] = [];
    let promptTokens = 0;
    const reps = Math.min(8, Number(values.reps));
    // One warm-up, then reps; a different digit in front of each prompt (one token, so every
    // prompt has the same length) so that no slot's KV serves its prefix.
    for (let rep = -1; rep < reps; rep++) {
      steps.length = 0;
      const prompt = `${rep + 2}. ${promptOf(Number(values.prompt))}`;
      const started = performance.now();
      let firstAt = 0;
      const maxTokens = Number(values.tokens);
      for await (const event of pool.generate("m", { prompt, maxTokens, temperature: 0 })) {
        if (event.type === "text" && firstAt === 0) firstAt = performance.now();
        if (event.type === "error") throw new Error(event.error.message);
        if (event.type === "done") {
          promptTokens = event.usage.promptTokens;
          if (event.usage.cachedTokens > 0) throw new Error("a slot's KV served part of the prompt");
        }
      }
      const prefill = await prefillStep(promptTokens);
      if (rep < 0) continue;
      stepMs.push(prefill.ms);
      for (const step of steps) if (step.tokens === 1 && step.batchSize === 1) decodeMs.push(step.ms);
      ttftMs.push((firstAt || performance.now()) - started);
    }
    const result: StepsResult = {
      promptTokens,
      stepMs: median(stepMs),
      engineTtftMs: median(ttftMs),
      decodeStepMs: median(decodeMs),
    };
    console.log(JSON.stringify(result));
  } finally {
    await pool.close();
  }
}

if (import.meta.main) await main();
