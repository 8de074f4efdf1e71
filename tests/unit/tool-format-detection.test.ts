/**
 * The format is read from the chat template, not the model's name: real
 * templates of each family (llama.cpp's collection, in the llama.cpp source that
 * bench/peers/build-llama-server.ts unpacks under .cache/llama-server) are detected as their family.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { detectOutputSyntax, type OutputSyntax } from "../../src/core/grammar/tool-call-syntax.ts";

const DIR = join(import.meta.dir, "../../.cache/llama-server/3.22.1/src/models/templates");

const EXPECTED: Record<string, OutputSyntax> = {
  "Qwen-Qwen2.5-7B-Instruct": { tools: "hermes", reasoning: "none" },
  "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": { tools: "hermes", reasoning: "none" },
  "Qwen-Qwen3-0.6B": { tools: "hermes", reasoning: "think" },
  "Qwen-QwQ-32B": { tools: "hermes", reasoning: "think" },
  "Qwen3-Coder": { tools: "qwen3-coder", reasoning: "none" },
  "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": { tools: "qwen3-coder", reasoning: "think" },
  "meta-llama-Llama-3.1-8B-Instruct": { tools: "llama3", reasoning: "none" },
  "meta-llama-Llama-3.2-3B-Instruct": { tools: "llama3", reasoning: "none" },
  "meta-llama-Llama-3.3-70B-Instruct": { tools: "llama3", reasoning: "none" },
  "Mistral-Small-3.2-24B-Instruct-2506": { tools: "mistral", reasoning: "none" },
  "unsloth-mistral-Devstral-Small-2507": { tools: "mistral", reasoning: "none" },
  "mistralai-Ministral-3-14B-Reasoning-2512": { tools: "mistral", reasoning: "mistral-think" },
  "mistralai-Mistral-Nemo-Instruct-2407": { tools: "mistral-json", reasoning: "none" },
  "openai-gpt-oss-120b": { tools: "harmony", reasoning: "harmony" },
  "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": { tools: "deepseek-r1", reasoning: "think" },
  "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": { tools: "deepseek-r1", reasoning: "think" },
  "deepseek-ai-DeepSeek-V3.1": { tools: "deepseek-v3", reasoning: "think" },
  "GLM-4.6": { tools: "glm", reasoning: "think" },
  "GLM-4.7-Flash": { tools: "glm", reasoning: "think" },
  "google-gemma-4-31B-it": { tools: "gemma4", reasoning: "gemma4-thought" },
  "google-gemma-2-2b-it": { tools: "generic", reasoning: "none" },
  "microsoft-Phi-3.5-mini-instruct": { tools: "generic", reasoning: "none" },
};

describe.skipIf(!existsSync(DIR))("format detection on real chat templates", () => {
  test.each(Object.entries(EXPECTED))("%s", (file, want) => {
    expect(detectOutputSyntax(readFileSync(join(DIR, `${file}.jinja`), "utf8"))).toEqual(want);
  });
});

if (!existsSync(DIR))
  console.warn(
    `tool-format-detection: skipped, no llama.cpp templates at ${DIR} (bench/peers/build-llama-server.ts unpacks them)`,
  );

describe("format detection on small templates", () => {
  test("markers decide, whatever the model is called", () => {
    expect(detectOutputSyntax("{{ '<tool_call>' }}").tools).toBe("hermes");
    expect(detectOutputSyntax("{{- '<|python_tag|>' }}{{ '<|eom_id|>' }}").tools).toBe("llama3");
    expect(detectOutputSyntax(null)).toEqual({ tools: "hermes", reasoning: "none" });
    expect(detectOutputSyntax("{{ messages[0].content }}")).toEqual({ tools: "generic", reasoning: "none" });
  });
});
