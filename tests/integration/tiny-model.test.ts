/**
 * Loads the generated tiny model into the real prebuilt libllama (CPU) and decodes with it.
 * Self-contained on purpose: a minimal C shim compiled by bun:ffi's built-in TinyCC, so this
 * test checks the model file, not the project's FFI layer.
 */

import { cc, type Pointer } from "bun:ffi";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { readGgufInfo } from "../../src/neuron/gguf/gguf-reader.ts";
import { writeRandomModel } from "../../src/neuron/gguf/random-model.ts";
import { ensureDemoModel, TINY_GREEDY_LIMIT, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";
import { TINY_SPECIAL_TOKENS } from "../../src/neuron/gguf/tiny-vocab.ts";

const LIB_DIR = join(process.cwd(), "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");
const TMP_DIR = join(process.cwd(), "tests/.tmp/tiny-model");

const SHIM_SOURCE = `
#include <stdint.h>
#include <stdbool.h>
#include "llama.h"
#include "ggml-backend.h"

static void quiet(enum ggml_log_level level, const char * text, void * user) { (void) level; (void) text; (void) user; }

void shim_init(const char * lib_dir) {
  llama_log_set(quiet, 0);
  ggml_backend_load_all_from_path(lib_dir);
  llama_backend_init();
}

struct llama_model * shim_load(const char * path) {
  struct llama_model_params p = llama_model_default_params();
  p.n_gpu_layers = 0;
  return llama_model_load_from_file(path, p);
}

struct llama_context * shim_context(struct llama_model * model, int32_t n_ctx) {
  struct llama_context_params p = llama_context_default_params();
  p.n_ctx = n_ctx;
  p.n_batch = n_ctx;
  p.n_ubatch = 512;
  /* One thread: the tiny model's compute is trivial, and spinning worker threads crawl on a busy machine. */
  p.n_threads = 1;
  p.n_threads_batch = 1;
  p.no_perf = true;
  return llama_init_from_model(model, p);
}

const struct llama_vocab * shim_vocab(struct llama_model * model) { return llama_model_get_vocab(model); }

int32_t shim_tokenize(const struct llama_vocab * vocab, const char * text, int32_t len, int32_t * out, int32_t max) {
  return llama_tokenize(vocab, text, len, out, max, true, true);
}

int32_t shim_piece(const struct llama_vocab * vocab, int32_t token, char * buf, int32_t len) {
  return llama_token_to_piece(vocab, token, buf, len, 0, true);
}

bool shim_is_eog(const struct llama_vocab * vocab, int32_t token) { return llama_vocab_is_eog(vocab, token); }

/* Decodes the prompt, then samples until end-of-generation or max_out tokens; returns the count or -1. */
int32_t shim_generate(struct llama_context * ctx, const int32_t * prompt, int32_t n_prompt,
                      int32_t * out, int32_t max_out, int32_t greedy, uint32_t seed) {
  const struct llama_vocab * vocab = llama_model_get_vocab(llama_get_model(ctx));
  llama_memory_clear(llama_get_memory(ctx), true);
  struct llama_sampler * smpl = greedy ? llama_sampler_init_greedy() : llama_sampler_init_dist(seed);
  int32_t n = 0;
  if (llama_decode(ctx, llama_batch_get_one((int32_t *) prompt, n_prompt)) != 0) { llama_sampler_free(smpl); return -1; }
  while (n < max_out) {
    int32_t token = llama_sampler_sample(smpl, ctx, -1);
    out[n++] = token;
    if (llama_vocab_is_eog(vocab, token)) break;
    if (llama_decode(ctx, llama_batch_get_one(&out[n - 1], 1)) != 0) { llama_sampler_free(smpl); return -1; }
  }
  llama_sampler_free(smpl);
  return n;
}

void shim_free(struct llama_model * model, struct llama_context * ctx) {
  if (ctx) llama_free(ctx);
  if (model) llama_model_free(model);
}
`;

function compileShim() {
  mkdirSync(TMP_DIR, { recursive: true });
  const source = join(TMP_DIR, "tiny-model-shim.c");
  writeFileSync(source, SHIM_SOURCE);
  return cc({
    source,
    include: [join(process.cwd(), "ffi/include")],
    library: ["llama.v0.5.0", "ggml.v0.5.0", "ggml-base"],
    flags: [`-L${LIB_DIR}`, `-Wl,-rpath,${LIB_DIR}`],
    symbols: {
      shim_init: { args: ["cstring"], returns: "void" },
      shim_load: { args: ["cstring"], returns: "ptr" },
      shim_context: { args: ["ptr", "i32"], returns: "ptr" },
      shim_vocab: { args: ["ptr"], returns: "ptr" },
      shim_tokenize: { args: ["ptr", "ptr", "i32", "ptr", "i32"], returns: "i32" },
      shim_piece: { args: ["ptr", "i32", "ptr", "i32"], returns: "i32" },
      shim_is_eog: { args: ["ptr", "i32"], returns: "bool" },
      shim_generate: { args: ["ptr", "ptr", "i32", "ptr", "i32", "i32", "u32"], returns: "i32" },
      shim_free: { args: ["ptr", "ptr"], returns: "void" },
    },
  });
}

const cstr = (s: string) => Buffer.from(`${s}\0`);

function pointer(value: Pointer | bigint | null, what: string): Pointer {
  if (typeof value !== "number") throw new Error(`libllama returned no ${what}`);
  return value;
}

type Shim = ReturnType<typeof compileShim>["symbols"];
let lib: ReturnType<typeof compileShim>;
let shim: Shim;
let model: Pointer;
let ctx: Pointer;
let vocab: Pointer;
let modelPath: string;
/** The chat template as stored in the file, rendered the way the neuron renders prompts. */
let template: Template;

beforeAll(async () => {
  modelPath = await ensureDemoModel(TMP_DIR);
  template = new Template((await readGgufInfo(modelPath)).chatTemplate ?? "");
  lib = compileShim();
  shim = lib.symbols;
  shim.shim_init(cstr(LIB_DIR));
  model = pointer(shim.shim_load(cstr(modelPath)), `model from ${modelPath}`);
  ctx = pointer(shim.shim_context(model, 4096), "context");
  vocab = pointer(shim.shim_vocab(model), "vocab");
});

afterAll(() => {
  if (model) shim.shim_free(model, ctx ?? null);
  lib?.close();
});

function tokenize(text: string): Int32Array {
  const bytes = Buffer.from(text);
  const out = new Int32Array(bytes.length + 8);
  const n = shim.shim_tokenize(vocab, bytes, bytes.length, out, out.length);
  if (n < 0) throw new Error(`tokenize failed (${n})`);
  return out.subarray(0, n);
}

function piece(token: number): string {
  const buf = Buffer.alloc(64);
  const n = shim.shim_piece(vocab, token, buf, buf.length);
  return buf.subarray(0, Math.max(0, n)).toString("utf8");
}

function generate(prompt: Int32Array, maxTokens: number, greedy: boolean, seed = 0, context = ctx): number[] {
  const out = new Int32Array(maxTokens);
  const n = shim.shim_generate(context, prompt, prompt.length, out, maxTokens, greedy ? 1 : 0, seed);
  if (n < 0) throw new Error("llama_decode failed");
  return [...out.subarray(0, n)];
}

const chatPrompt = (user: string) =>
  template.render({ messages: [{ role: "user", content: user }], add_generation_prompt: true });

describe("tiny model on real libllama", () => {
  test("ensureDemoModel writes a readable file once and reuses it", async () => {
    expect(modelPath.endsWith(TINY_MODEL_FILE)).toBe(true);
    const info = await readGgufInfo(modelPath);
    expect(info.architecture).toBe("llama");
    expect(info.contextLength).toBeGreaterThanOrEqual(32768);
    expect(info.eosTokenId).toBe(TINY_SPECIAL_TOKENS.imEnd);
    const mtime = (await Bun.file(modelPath).stat()).mtimeMs;
    expect(await ensureDemoModel(TMP_DIR)).toBe(modelPath);
    expect((await Bun.file(modelPath).stat()).mtimeMs).toBe(mtime);
  });

  test("tokenizer: words become single tokens, specials parse, unknown text falls back to bytes", () => {
    const ids = [...tokenize("<|im_start|>user\nThe cat sleeps.<|im_end|>")];
    expect(ids[0]).toBe(TINY_SPECIAL_TOKENS.bos);
    expect(ids[1]).toBe(TINY_SPECIAL_TOKENS.imStart);
    expect(ids.at(-1)).toBe(TINY_SPECIAL_TOKENS.imEnd);
    const text = ids.slice(2, -1).map(piece).join("");
    expect(text).toBe(" user\nThe cat sleeps.");
    expect(ids.map(piece)).toContain(" cat");
    const zebra = [...tokenize("zebra")].slice(1);
    expect(zebra.map(piece).join("")).toBe(" zebra");
    // A sentence-initial word right after a newline is one space-less token.
    const afterNewline = [...tokenize("<|im_start|>user\nThe river")].slice(2);
    expect(afterNewline.map(piece)).toEqual([" user", "\n", "The", " river"]);
    expect(shim.shim_is_eog(vocab, TINY_SPECIAL_TOKENS.imEnd)).toBe(true);
  });

  test("greedy decoding answers with words and ends its turn within the bound", () => {
    const prompts = ["Hello there", "Tell me about the river.", "zzqx 123 ???"];
    const answers: string[] = [];
    for (const user of prompts) {
      const tokens = generate(tokenize(chatPrompt(user)), TINY_GREEDY_LIMIT, true);
      expect(tokens.at(-1)).toBe(TINY_SPECIAL_TOKENS.imEnd);
      expect(tokens.length).toBeGreaterThan(2);
      const words = tokens.slice(0, -1).map(piece);
      expect(words.every((w) => /^( ?\p{L}+|[.,!?;:])$/u.test(w))).toBe(true);
      const answer = words.join("");
      // Starts like a sentence (no leading space), ends like one.
      expect(answer).toMatch(/^\p{Lu}.*[.!?]$/u);
      answers.push(answer);
      // Temperature 0 is deterministic.
      expect(generate(tokenize(chatPrompt(user)), TINY_GREEDY_LIMIT, true)).toEqual(tokens);
    }
    console.log("greedy answers:", answers);
  });

  test("sampling at temperature 1 ends its turn well before a few hundred tokens", () => {
    const prompt = tokenize(chatPrompt("Tell me a story."));
    const lengths: number[] = [];
    for (let seed = 1; seed <= 60; seed++) {
      const tokens = generate(prompt, 400, false, seed);
      expect(tokens.at(-1)).toBe(TINY_SPECIAL_TOKENS.imEnd);
      lengths.push(tokens.length);
    }
    lengths.sort((a, b) => a - b);
    console.log(
      `temperature-1 answer lengths over ${lengths.length} runs: median ${lengths[lengths.length >> 1]}, max ${lengths.at(-1)}`,
    );
    expect(new Set(lengths).size).toBeGreaterThan(1);
  }, 30_000);

  test("a random-weight model of a requested size loads and generates without ending early", async () => {
    const path = join(TMP_DIR, "random-8m.gguf");
    const { shape, bytes } = await writeRandomModel(path, 8 * 2 ** 20, 7);
    expect(Math.abs(bytes - 8 * 2 ** 20) / (8 * 2 ** 20)).toBeLessThan(0.25);
    expect(shape.nLayer).toBeGreaterThan(1);
    const randomModel = pointer(shim.shim_load(cstr(path)), `model from ${path}`);
    const randomCtx = pointer(shim.shim_context(randomModel, 512), "context");
    try {
      const tokens = generate(tokenize(chatPrompt("Hello")), 32, true, 0, randomCtx);
      expect(tokens.length).toBe(32);
      // NaN logits would make greedy pick token 0 forever; special and byte rows are silenced.
      expect(tokens.every((t) => t > TINY_SPECIAL_TOKENS.imEnd)).toBe(true);
    } finally {
      shim.shim_free(randomModel, randomCtx);
    }
  }, 30_000);
});
