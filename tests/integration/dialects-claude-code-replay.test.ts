/**
 * Replays a recorded Claude Code request (scrubbed: see
 * helpers-dialects/scrub-request.ts; re-record with claude-code.test.ts)
 * against the gateway with the demo model at a 32768 context, so the
 * compatibility is checked without the CLI: ?beta=true and its long
 * anthropic-beta header, system blocks with cache_control, a role "system"
 * message, adaptive thinking, context_management, output_config,
 * metadata.user_id, a dozen tools (one defer_loading), max_tokens 32000.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import fixture from "./__fixtures__/claude-code-request.json";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

const KEY = "sk-ant-replay-test";
const CONTEXT = 32768;
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({
    apiKeys: [KEY],
    models: [{ id: TINY_ID, contextSize: CONTEXT }],
    contextOverflow: "error",
  });
});

afterAll(async () => {
  await gw?.stop();
});

function post(path: string, body: unknown): Promise<Response> {
  return fetch(`${gw.url}${path}`, {
    method: "POST",
    headers: { ...fixture.headers, "x-api-key": KEY, accept: "application/json" },
    body: JSON.stringify(body),
  });
}

async function countTokens(): Promise<number> {
  const { max_tokens: _max, stream: _stream, ...rest } = fixture.body;
  const response = await post("/v1/messages/count_tokens?beta=true", rest);
  expect(response.status).toBe(200);
  return ((await response.json()) as { input_tokens: number }).input_tokens;
}

describe("a recorded Claude Code request", () => {
  test("is what the fixture claims to cover", () => {
    const body = fixture.body;
    expect(fixture.path).toBe("/v1/messages?beta=true");
    expect(fixture.headers["anthropic-beta"].split(",").length).toBeGreaterThan(3);
    expect(JSON.stringify(body).length).toBeGreaterThan(40_000);
    expect(body.max_tokens).toBe(32000);
    expect(body.stream).toBe(true);
    expect(body.system.some((block) => "cache_control" in block)).toBe(true);
    expect(body.messages.some((message) => message.role === "system")).toBe(true);
    expect(body.thinking.type).toBe("adaptive");
    expect(body.context_management).toBeDefined();
    expect(body.output_config).toBeDefined();
    expect(body.metadata.user_id).toBeString();
    expect(body.tools.length).toBeGreaterThanOrEqual(10);
    expect(body.tools.some((tool) => "defer_loading" in tool)).toBe(true);
  });

  test("max_tokens 32000 over the context gets the exact overflow text, streamed or not", async () => {
    const input = await countTokens();
    expect(input + 32000).toBeGreaterThan(CONTEXT);
    for (const stream of [true, false]) {
      const response = await post(fixture.path, { ...fixture.body, stream });
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        type: "error",
        error: {
          type: "invalid_request_error",
          message: `input length and \`max_tokens\` exceed context limit: ${input} + 32000 > ${CONTEXT}, decrease input length or \`max_tokens\` and try again`,
        },
      });
    }
  });

  test("with max_tokens shrunk as Claude Code does, it is answered streamed and not, alike", async () => {
    const input = await countTokens();
    const maxTokens = CONTEXT - input - 1000;
    const body = { ...fixture.body, max_tokens: maxTokens, temperature: 0 };

    const plain = await post(fixture.path, { ...body, stream: false });
    expect(plain.status).toBe(200);
    const message = (await plain.json()) as Anthropic.Message;
    expect(message.type).toBe("message");
    expect(message.stop_reason).toBe("end_turn");
    expect(message.usage.input_tokens).toBe(input);
    const text = message.content.map((block) => (block.type === "text" ? block.text : "")).join("");
    expect(text.length).toBeGreaterThan(0);

    // The SDK's beta client, as Claude Code itself uses it, parses the stream.
    const client = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
    const final = await client.beta.messages
      .stream(body as unknown as Anthropic.Beta.MessageCreateParamsStreaming, {
        headers: { "anthropic-beta": fixture.headers["anthropic-beta"] },
      })
      .finalMessage();
    expect(final.stop_reason).toBe("end_turn");
    expect(final.content.map((block) => (block.type === "text" ? block.text : "")).join("")).toBe(text);
  });
});
