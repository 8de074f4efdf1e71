/**
 * The request readers of `/v1/completions` and `/v1/embeddings`: the input
 * shapes OpenAI allows, OpenAI's defaults, and a 400 naming each field that
 * cannot be honoured.
 */
import { describe, expect, test } from "bun:test";
import { CortexError } from "../../../src/core/errors.ts";
import { parseCompletionsRequest } from "../../../src/dialects/openai/completions.ts";
import { parseEmbeddingsRequest, renderEmbeddingsResponse } from "../../../src/dialects/openai/embeddings.ts";

function refusal(run: () => unknown): { param: string | undefined; status: number } {
  try {
    run();
  } catch (error) {
    if (error instanceof CortexError) return { param: error.param, status: error.status };
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("parseEmbeddingsRequest", () => {
  test.each([
    ["a string", "hi", ["hi"]],
    ["strings", ["a", "b"], ["a", "b"]],
    ["one token array", [1, 2, 3], [[1, 2, 3]]],
    ["token arrays", [[1], [2, 3]], [[1], [2, 3]]],
  ])("%s", (_, input, inputs) => {
    const request = parseEmbeddingsRequest({ model: "m", input });
    expect(request.inputs).toEqual(inputs as Array<string | number[]>);
    expect(request.encodingFormat).toBe("float");
  });

  test.each([
    ["no input", { model: "m" }, "input"],
    ["an empty list", { model: "m", input: [] }, "input"],
    ["an unknown encoding", { model: "m", input: "x", encoding_format: "int8" }, "encoding_format"],
    ["a negative token", { model: "m", input: [1, -2] }, "input"],
    ["zero dimensions", { model: "m", input: "x", dimensions: 0 }, "dimensions"],
  ])("%s is a 400 naming the field", (_, body, param) => {
    const { param: named, status } = refusal(() => parseEmbeddingsRequest(body));
    expect(status).toBe(400);
    expect(named?.split(".")[0]).toBe(param);
  });

  test("base64 is the little-endian float32 bytes", () => {
    const vector = new Float32Array([0.5, -1, 0.25]);
    const [item] = renderEmbeddingsResponse([vector], {
      model: "m",
      promptTokens: 3,
      encodingFormat: "base64",
    }).data;
    const bytes = Buffer.from(item?.embedding as string, "base64");
    expect(Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, 3))).toEqual([0.5, -1, 0.25]);
  });
});

describe("parseCompletionsRequest", () => {
  test("one canonical request per prompt, the raw prompt carried past the template, OpenAI's default max_tokens", () => {
    const requests = parseCompletionsRequest({ model: "m", prompt: ["a", "b"], stop: "\n", suffix: "z" });
    expect(requests.map((r) => r.completion)).toEqual([
      { prompt: "a", suffix: "z" },
      { prompt: "b", suffix: "z" },
    ]);
    expect(requests[0]?.maxTokens).toBe(16);
    expect(requests[0]?.stop).toEqual(["\n"]);
  });

  test.each([
    ["echo: true", { echo: true }, "echo"],
    ["logprobs", { logprobs: 0 }, "logprobs"],
    ["n > 1", { n: 2 }, "n"],
    ["best_of > 1", { best_of: 2 }, "best_of"],
    ["token prompts", { prompt: [1, 2] }, "prompt"],
    ["several streamed prompts", { prompt: ["a", "b"], stream: true }, "prompt"],
  ])("%s is a 400 naming the field", (_, extra, param) => {
    const { param: named, status } = refusal(() =>
      parseCompletionsRequest({ model: "m", prompt: "a", ...extra }),
    );
    expect(status).toBe(400);
    expect(named).toBe(param);
  });

  test("echo: false, logprobs: null, n: 1 change nothing", () => {
    expect(
      parseCompletionsRequest({ model: "m", prompt: "a", echo: false, logprobs: null, n: 1 }),
    ).toHaveLength(1);
  });
});
