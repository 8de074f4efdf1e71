/**
 * `POST /v1/embeddings` with the official OpenAI SDK against the gateway
 * and a real neuron serving the tiny (chat) model: mean-pooled, unit-length
 * vectors, float and base64 alike, batched inputs, and the fields it refuses.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

const KEY = "sk-embeddings-test";
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway({ apiKeys: [KEY] });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
});

function norm(vector: readonly number[]): number {
  return Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
}

async function embed(
  input: string | string[] | number[] | number[][],
  encoding_format?: "float" | "base64",
): Promise<OpenAI.CreateEmbeddingResponse> {
  return client.embeddings.create({
    model: TINY_ID,
    input,
    ...(encoding_format === undefined ? {} : { encoding_format }),
  });
}

describe("embeddings.create", () => {
  test("the same input gives the same unit vector, float and base64 alike; another input another", async () => {
    const float = await embed("The river runs to the sea.", "float");
    expect(float.object).toBe("list");
    expect(float.model).toBe(TINY_ID);
    const vector = float.data[0]?.embedding ?? [];
    expect(vector.length).toBeGreaterThan(8);
    expect(Math.abs(norm(vector) - 1)).toBeLessThan(1e-5);
    expect(float.usage.prompt_tokens).toBeGreaterThan(0);
    expect(float.usage.total_tokens).toBe(float.usage.prompt_tokens);

    // The SDK asks for base64 by default and decodes it itself.
    const base64 = await embed("The river runs to the sea.");
    expect(base64.data[0]?.embedding).toEqual(vector);
    const again = await embed("The river runs to the sea.", "float");
    expect(again.data[0]?.embedding).toEqual(vector);

    const other = await embed("A small boat on the lake.", "float");
    expect(other.data[0]?.embedding).not.toEqual(vector);
    expect(Math.abs(norm(other.data[0]?.embedding ?? []) - 1)).toBeLessThan(1e-5);
  });

  test("several inputs in one request: each as it would be alone, in order", async () => {
    const texts = ["The river runs to the sea.", "A small boat on the lake.", "Rain."];
    const batch = await embed(texts, "float");
    expect(batch.data.map((d) => d.index)).toEqual([0, 1, 2]);
    let tokens = 0;
    for (const [i, text] of texts.entries()) {
      const alone = await embed(text, "float");
      tokens += alone.usage.prompt_tokens;
      const a = alone.data[0]?.embedding ?? [];
      const b = batch.data[i]?.embedding ?? [];
      // One decode or several: the same numbers up to float rounding.
      expect(a.length).toBe(b.length);
      for (let k = 0; k < a.length; k++) expect(Math.abs((a[k] ?? 0) - (b[k] ?? 0))).toBeLessThan(1e-4);
    }
    expect(batch.usage.prompt_tokens).toBe(tokens);
  });

  test("token arrays: one array is one input, an array of arrays several", async () => {
    const one = await embed([1, 5, 9, 12], "float");
    expect(one.data.length).toBe(1);
    expect(one.usage.prompt_tokens).toBe(4);
    const two = await embed(
      [
        [1, 5, 9, 12],
        [1, 7],
      ],
      "float",
    );
    expect(two.data.length).toBe(2);
    expect(two.data[0]?.embedding).toEqual(one.data[0]?.embedding ?? []);
    expect(two.usage.prompt_tokens).toBe(6);
  });

  test("refused with a 400 naming the field: dimensions the model cannot give, bad tokens, empty input", async () => {
    const size = (await embed("hello", "float")).data[0]?.embedding.length ?? 0;
    const dims = await client.embeddings
      .create({ model: TINY_ID, input: "hello", dimensions: size - 1 })
      .catch((e: unknown) => e);
    expect(dims).toBeInstanceOf(OpenAI.BadRequestError);
    expect((dims as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("dimensions");
    // The model's own size is no change at all.
    const same = await client.embeddings.create({ model: TINY_ID, input: "hello", dimensions: size });
    expect(same.data[0]?.embedding.length).toBe(size);

    const token = await embed([[1, 99999999]]).catch((e: unknown) => e);
    expect(token).toBeInstanceOf(OpenAI.BadRequestError);
    expect((token as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("input[0]");

    const empty = await embed(["hello", ""]).catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(OpenAI.BadRequestError);
    expect((empty as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("input[1]");

    const format = await fetch(`${gw.url}/v1/embeddings`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: TINY_ID, input: "hello", encoding_format: "int8" }),
    });
    expect(format.status).toBe(400);
    expect(((await format.json()) as { error: { param: string } }).error.param).toBe("encoding_format");
  });

  test("an unknown model is the SDK's NotFoundError; a wrong key its AuthenticationError", async () => {
    const missing = await client.embeddings
      .create({ model: "no-such-model", input: "hello" })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    const wrong = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
    const denied = await wrong.embeddings.create({ model: TINY_ID, input: "hello" }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(OpenAI.AuthenticationError);
  });
});
