import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { parseSize } from "../../scripts/make-model.ts";
import { argmax, START_STATE } from "../../src/neuron/gguf/bigram-model.ts";
import { CHATML_TOOLS_TEMPLATE } from "../../src/neuron/gguf/chatml-tools-template.ts";
import { readGgufInfo } from "../../src/neuron/gguf/gguf-reader.ts";
import { mulberry32, randomModelShape } from "../../src/neuron/gguf/random-model.ts";
import {
  buildTinyModel,
  ensureDemoModel,
  TINY_CORPUS,
  TINY_GREEDY_LIMIT,
  TINY_HPARAMS,
  TINY_MODEL_VERSION_KEY,
} from "../../src/neuron/gguf/tiny-model.ts";
import { SENTENCE_ENDS, SPM_SPACE, TINY_SPECIAL_TOKENS } from "../../src/neuron/gguf/tiny-vocab.ts";

const model = buildTinyModel();
const { vocab, bigram, nEmbd } = model;
const width = bigram.emitIds.length;
const EOG = TINY_SPECIAL_TOKENS.imEnd;
const row = (state: number) => bigram.probs.subarray(state * width, (state + 1) * width);
const tensor = (name: string) => {
  const data = model.spec.tensors.find((t) => t.name === name)?.data;
  if (!(data instanceof Float32Array)) throw new Error(`no F32 tensor ${name}`);
  return data;
};

/** The llama forward pass for one token, given that attention and FFN contribute nothing. */
function logitsAfter(token: number): Float64Array {
  const x = tensor("token_embd.weight").subarray(token * nEmbd, (token + 1) * nEmbd);
  const norm = tensor("output_norm.weight");
  const output = tensor("output.weight");
  const meanSquare = x.reduce((sum, v) => sum + v * v, 0) / nEmbd;
  const scale = 1 / Math.sqrt(meanSquare + TINY_HPARAMS.rmsEps);
  const logits = new Float64Array(vocab.tokens.length);
  for (let v = 0; v < logits.length; v++) {
    let sum = 0;
    for (let i = 0; i < nEmbd; i++)
      sum += (x[i] ?? 0) * scale * (norm[i] ?? 0) * (output[v * nEmbd + i] ?? 0);
    logits[v] = sum;
  }
  return logits;
}

/** Samples answers at temperature 1 from the bigram table; returns their token counts (EOG included). */
function sampleLengths(runs: number, seed: number, cap: number): number[] {
  const random = mulberry32(seed);
  const lengths: number[] = [];
  for (let r = 0; r < runs; r++) {
    let state = START_STATE;
    let n = 0;
    while (n < cap) {
      n++;
      const p = row(state);
      let u = random();
      let j = 0;
      while (j < width - 1 && u >= (p[j] ?? 0)) u -= p[j++] ?? 0;
      const id = bigram.emitIds[j] ?? EOG;
      if (id === EOG) break;
      state = bigram.stateOfToken[id] ?? START_STATE;
    }
    lengths.push(n);
  }
  return lengths.sort((a, b) => a - b);
}

describe("tiny bigram model", () => {
  test("vocabulary: SPM layout with byte fallback, ChatML controls and reachable words", () => {
    expect(vocab.tokens.slice(0, 3)).toEqual(["<unk>", "<s>", "</s>"]);
    expect(vocab.tokens[TINY_SPECIAL_TOKENS.firstByte]).toBe("<0x00>");
    expect(vocab.tokens[TINY_SPECIAL_TOKENS.firstByte + 0x0a]).toBe("<0x0A>");
    expect(vocab.tokens[TINY_SPECIAL_TOKENS.firstByte + 255]).toBe("<0xFF>");
    expect(vocab.tokens[TINY_SPECIAL_TOKENS.imStart]).toBe("<|im_start|>");
    expect(vocab.tokens[EOG]).toBe("<|im_end|>");
    expect(new Set(vocab.tokens).size).toBe(vocab.tokens.length);
    // llama.cpp's SPM only merges into existing tokens, so every prefix of a word must exist.
    for (const id of vocab.contentIds) {
      const chars = [...(vocab.tokens[id] ?? "")];
      for (let n = 2; n <= chars.length; n++) expect(vocab.idOf.has(chars.slice(0, n).join(""))).toBe(true);
    }
    expect(vocab.idOf.has(`${SPM_SPACE}river`)).toBe(true);
    expect(vocab.idOf.has(".")).toBe(true);
    // Sentence starters also exist without the space marker, for the first word of an answer.
    const the = vocab.idOf.get(`${SPM_SPACE}The`) ?? -1;
    expect(vocab.tokens[vocab.bareIds.get(the) ?? -1]).toBe("The");
    expect(bigram.stateOfToken[vocab.idOf.get("The") ?? -1]).toBe(bigram.stateOfToken[the]);
  });

  test("the forward pass yields log P(next | current) and never NaN", () => {
    const samples = [
      TINY_SPECIAL_TOKENS.bos,
      TINY_SPECIAL_TOKENS.firstByte + 10,
      EOG,
      ...vocab.contentIds.slice(0, 40),
    ];
    for (const token of samples) {
      const logits = logitsAfter(token);
      expect(logits.some(Number.isNaN)).toBe(false);
      const p = row(bigram.stateOfToken[token] ?? START_STATE);
      for (const [j, id] of bigram.emitIds.entries()) {
        const expected = Math.max(-1e4, Math.log(p[j] ?? 0));
        expect(Math.abs((logits[id] ?? 0) - expected)).toBeLessThan(1e-3);
      }
      // Bytes, prefixes and specials other than EOG are never produced.
      expect(logits[TINY_SPECIAL_TOKENS.firstByte + 65]).toBeLessThan(-1000);
      expect(logits[vocab.idOf.get(`${SPM_SPACE}ri`) ?? -1]).toBeLessThan(-1000);
      // Yet any byte can be written when a grammar leaves nothing else (finite logits), and a
      // forced byte is printable ASCII, or the lead of the shortest UTF-8 sequence, first.
      const byte = (b: number) => logits[TINY_SPECIAL_TOKENS.firstByte + b] ?? Number.NaN;
      for (let b = 0; b < 256; b++) expect(Number.isFinite(byte(b))).toBe(true);
      expect(byte(0x41)).toBeGreaterThan(byte(0xc3) + 10);
      expect(byte(0xc3)).toBeGreaterThan(byte(0xe1) + 10);
      expect(byte(0xe1)).toBeGreaterThan(byte(0xe0) + 10);
      expect(byte(0xf0)).toBeGreaterThan(byte(0xc0) + 10);
      expect(byte(0x22)).toBeGreaterThan(byte(0x0a) + 10);
    }
  });

  test("rows are distributions; end-of-generation follows sentence ends only, and is likely there", () => {
    for (let s = 0; s < bigram.nStates; s++) {
      const p = row(s);
      expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-9);
    }
    for (const [i, id] of vocab.contentIds.entries()) {
      const pEnd = row(i + 1)[width - 1] ?? 0;
      if (SENTENCE_ENDS.has(vocab.tokens[id] ?? "")) expect(pEnd).toBeGreaterThan(0.5);
      else expect(pEnd).toBe(0);
    }
    expect(row(START_STATE)[width - 1]).toBe(0);
    // Answers open with a space-less word.
    for (const [j, id] of bigram.emitIds.entries()) {
      if ((row(START_STATE)[j] ?? 0) > 0) expect(vocab.tokens[id]).toMatch(/^\p{Lu}/u);
    }
  });

  test("greedy decoding from every state ends within the limit", () => {
    expect(bigram.maxGreedySteps).toBeLessThanOrEqual(TINY_GREEDY_LIMIT);
    for (let s0 = 0; s0 < bigram.nStates; s0++) {
      let s = s0;
      let steps = 0;
      for (; steps <= TINY_GREEDY_LIMIT; steps++) {
        const id = bigram.emitIds[argmax(row(s))] ?? EOG;
        if (id === EOG) break;
        s = bigram.stateOfToken[id] ?? START_STATE;
      }
      expect(steps).toBeLessThan(TINY_GREEDY_LIMIT);
    }
  });

  test("sampled answers at temperature 1 end within a few hundred tokens (Monte Carlo)", () => {
    const runs = 20_000;
    const lengths = sampleLengths(runs, 42, 1000);
    const median = lengths[runs >> 1] ?? 0;
    const p99 = lengths[Math.floor(runs * 0.99)] ?? 0;
    const over300 = lengths.filter((n) => n > 300).length;
    expect(median).toBeGreaterThan(3);
    expect(median).toBeLessThan(40);
    expect(p99).toBeLessThan(150);
    expect(over300 / runs).toBeLessThan(1e-3);
  });

  test("the chat template renders ChatML with tools through @huggingface/jinja", () => {
    const template = new Template(CHATML_TOOLS_TEMPLATE);
    const plain = template.render({
      messages: [{ role: "user", content: "Hi" }],
      add_generation_prompt: true,
    });
    expect(plain).toBe("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    const withTools = template.render({
      messages: [
        { role: "user", content: "Weather in Paris?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
          ],
        },
        { role: "tool", content: "sunny" },
      ],
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }],
      add_generation_prompt: true,
    });
    expect(withTools).toContain("<tools>\n{");
    expect(withTools).toContain('"name": "get_weather"');
    expect(withTools).toContain(
      '<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call>',
    );
    expect(withTools).toContain("<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>");
    expect(withTools.endsWith("<|im_start|>assistant\n")).toBe(true);
  });

  test("builds in well under a second and versions itself by content", () => {
    const started = performance.now();
    const again = buildTinyModel();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(again.version).toBe(model.version);
    expect(buildTinyModel(`${TINY_CORPUS} The end.`).version).not.toBe(model.version);
  });
});

describe("ensureDemoModel", () => {
  const dir = mkdtempSync(join(tmpdir(), "cortex-tiny-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("rewrites a stale or damaged file and leaves no temp files", async () => {
    const path = join(dir, "cortex-tiny.gguf");
    writeFileSync(path, "not a model");
    expect(await ensureDemoModel(dir)).toBe(path);
    const info = await readGgufInfo(path);
    expect(info.metadata[TINY_MODEL_VERSION_KEY]).toBe(model.version);
    expect(info.contextLength).toBe(131072);
    expect([...new Bun.Glob("*").scanSync(dir)]).toEqual(["cortex-tiny.gguf"]);
  });
});

describe("random benchmark models", () => {
  test("shapes land near the requested size with llama-like proportions", () => {
    for (const mib of [8, 300, 2048, 16384]) {
      const target = mib * 2 ** 20;
      const s = randomModelShape(target, vocab.tokens.length);
      const params =
        2 * s.nVocab * s.nEmbd +
        s.nLayer *
          (2 * s.nEmbd * s.nHead * s.headDim + 2 * s.nEmbd * s.nHeadKv * s.headDim + 3 * s.nEmbd * s.nFf);
      expect(Math.abs(params * 2 - target) / target).toBeLessThan(0.2);
      expect(s.nHead * s.headDim).toBe(s.nEmbd);
      expect(s.nHead % s.nHeadKv).toBe(0);
      expect(s.nLayer).toBeLessThanOrEqual(s.nEmbd / 64);
    }
  });

  test("--size parses binary units", () => {
    expect(parseSize("300M")).toBe(300 * 2 ** 20);
    expect(parseSize("1.5G")).toBe(1.5 * 2 ** 30);
    expect(parseSize("512k")).toBe(512 * 2 ** 10);
    expect(parseSize("12")).toBeUndefined();
    expect(parseSize("3X")).toBeUndefined();
  });
});
