/**
 * Anthropic's message-threads beta through the official SDK: its thread
 * sends only each new turn (`thread: continue`) and the gateway answers from
 * the stored conversation, exactly as if the whole history had been sent;
 * streamed turns continue too; an unknown id is Anthropic's 404
 * `thread_not_found`, never an answer with an empty history. The SDK's tool
 * runner, which threads by default, sends only the tool result, over a
 * scripted neuron that shows what the model was given.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import { betaTool } from "@anthropic-ai/sdk/helpers/beta/json-schema";
import { type ScriptedNeuron, startScriptedNeuron } from "./helpers-dialects/scripted-neuron.ts";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

const KEY = "sk-ant-threads-test";
const SCRIPTED = "scripted-model";
let real: TestGateway;
let scripted: TestGateway;
let neuron: ScriptedNeuron;
/** Every request body the SDK sent, as it went on the wire. */
const sent: Array<Record<string, unknown>> = [];
const sentHeaders: Headers[] = [];

function recordingClient(baseURL: string): Anthropic {
  return new Anthropic({
    baseURL,
    apiKey: KEY,
    maxRetries: 0,
    fetch: async (url: string | URL | Request, init?: RequestInit) => {
      if (typeof init?.body === "string") sent.push(JSON.parse(init.body) as Record<string, unknown>);
      sentHeaders.push(new Headers(init?.headers));
      return fetch(url, init);
    },
  });
}

beforeAll(async () => {
  real = await startTestGateway({ apiKeys: [KEY] });
  neuron = startScriptedNeuron([SCRIPTED]);
  scripted = await startTestGateway({
    apiKeys: [KEY],
    neurons: [{ name: "scripted", endpoint: neuron.url }],
    models: [{ id: SCRIPTED, file: `${SCRIPTED}.gguf`, contextSize: 8192 }],
  });
});

afterAll(async () => {
  await real?.stop();
  await scripted?.stop();
  neuron?.stop();
});

beforeEach(() => {
  sent.length = 0;
  sentHeaders.length = 0;
});

const system = "You are terse.";
const first: Anthropic.MessageParam = { role: "user", content: "Tell me about the river." };
const second: Anthropic.MessageParam = { role: "user", content: "And the sea?" };

/** Temperature 0, for repeatable answers (the SDK's types leave it out; the wire field still works). */
function greedy<T extends object>(params: T): T {
  return { ...params, temperature: 0 };
}

function textOf(message: { content: Array<{ type: string; text?: string }> }): string {
  return message.content.map((block) => (block.type === "text" ? (block.text ?? "") : "")).join("");
}

const prompt = (usage: { input_tokens: number; cache_read_input_tokens?: number | null }) =>
  usage.input_tokens + (usage.cache_read_input_tokens ?? 0);

describe("message threads on a real neuron", () => {
  test("a thread's second turn sends only the new message, and is answered as the whole conversation", async () => {
    const client = recordingClient(real.url);
    const thread = client.beta.messages.thread(greedy({ model: TINY_ID, system, max_tokens: 30 }));
    const one = await thread.send([first]);
    const two = await thread.send([second]);

    expect(sent[0]?.thread).toEqual({ type: "create" });
    expect(sent[1]?.thread).toEqual({ type: "continue", previous_message_id: one.id });
    expect(sent[1]?.messages).toEqual([second]);
    expect(sent[1]?.system).toBeUndefined();
    expect(sentHeaders[1]?.get("anthropic-beta")).toContain("message-threads-");

    const whole = await client.messages.create(
      greedy({
        model: TINY_ID,
        system,
        max_tokens: 30,
        messages: [first, { role: "assistant", content: textOf(one) }, second],
      }),
    );
    expect(prompt(two.usage)).toBe(prompt(whole.usage));
    expect(textOf(two)).toBe(textOf(whole));

    // count_tokens on a continuation counts the conversation it stands for.
    const counted = await fetch(`${real.url}/v1/messages/count_tokens`, {
      method: "POST",
      headers: { "x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" },
      body: JSON.stringify({
        model: TINY_ID,
        messages: [second],
        thread: { type: "continue", previous_message_id: one.id },
      }),
    });
    expect(((await counted.json()) as { input_tokens: number }).input_tokens).toBe(prompt(whole.usage));
  });

  test("streamed turns: the reply's id is the one a continuation names, and it is stored by message_stop", async () => {
    const client = recordingClient(real.url);
    const thread = client.beta.messages.thread(greedy({ model: TINY_ID, system, max_tokens: 30 }));
    const one = await thread.stream([first]).finalMessage();
    expect(one.id).toStartWith("msg_");
    // Sent as soon as the first stream ended: the thread is there already.
    const two = await thread.stream([second]).finalMessage();
    expect(sent[1]?.thread).toEqual({ type: "continue", previous_message_id: one.id });
    expect(sent[1]?.stream).toBe(true);

    const whole = await client.messages.create(
      greedy({
        model: TINY_ID,
        system,
        max_tokens: 30,
        messages: [first, { role: "assistant", content: textOf(one) }, second],
      }),
    );
    expect(prompt(two.usage)).toBe(prompt(whole.usage));
    expect(textOf(two)).toBe(textOf(whole));
  });

  test("an unknown previous_message_id is Anthropic's 404 thread_not_found, not an answer without history", async () => {
    const raw = await fetch(`${real.url}/v1/messages`, {
      method: "POST",
      headers: {
        "x-api-key": KEY,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "message-threads-2026-08-12",
        "content-type": "application/json",
      },
      body: JSON.stringify({
        model: TINY_ID,
        max_tokens: 20,
        messages: [second],
        thread: { type: "continue", previous_message_id: "msg_01unknown" },
      }),
    });
    expect(raw.status).toBe(404);
    const body = (await raw.json()) as {
      type: string;
      error: { type: string; message: string; details?: { error_code?: string } };
    };
    expect(body.type).toBe("error");
    expect(body.error.type).toBe("not_found_error");
    expect(body.error.details?.error_code).toBe("thread_not_found");
    expect(body.error.message).toContain("msg_01unknown");

    const client = recordingClient(real.url);
    const error = await client.beta.messages
      .create({
        model: TINY_ID,
        max_tokens: 20,
        messages: [second],
        thread: { type: "continue", previous_message_id: "msg_01unknown" },
        betas: ["message-threads-2026-08-12"],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.NotFoundError);
  });

  test("a continuation that changes system is a 400 thread_fingerprint_mismatch", async () => {
    const client = recordingClient(real.url);
    const one = await client.beta.messages.create(
      greedy({
        model: TINY_ID,
        system,
        max_tokens: 10,
        messages: [first],
        thread: { type: "create" as const },
      }),
    );
    const error = await client.beta.messages
      .create({
        model: TINY_ID,
        system: "Something else.",
        max_tokens: 10,
        messages: [second],
        thread: { type: "continue", previous_message_id: one.id },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    const bad = error as InstanceType<typeof Anthropic.BadRequestError>;
    expect((bad.error as { error: { details?: { error_code?: string } } }).error.details?.error_code).toBe(
      "thread_fingerprint_mismatch",
    );
  });
});

describe("the SDK's tool runner over a thread", () => {
  test("the second turn sends only the tool result; the model gets the whole conversation", async () => {
    neuron.replies.push(
      { toolCalls: [{ id: "call_1", name: "get_weather", arguments: JSON.stringify({ city: "Bern" }) }] },
      { text: "It is sunny in Bern." },
    );
    neuron.received.length = 0;
    const client = recordingClient(scripted.url);
    const calls: string[] = [];
    const runner = client.beta.messages.toolRunner({
      model: SCRIPTED,
      max_tokens: 100,
      system,
      messages: [{ role: "user", content: "Weather in Bern?" }],
      tools: [
        betaTool({
          name: "get_weather",
          description: "The weather in a city",
          inputSchema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
          run: ({ city }) => {
            calls.push(city);
            return `sunny in ${city}`;
          },
        }),
      ],
    });
    const final = await runner.runUntilDone();
    expect(calls).toEqual(["Bern"]);
    expect(textOf(final)).toBe("It is sunny in Bern.");

    expect(sent).toHaveLength(2);
    expect(sent[0]?.thread).toEqual({ type: "create" });
    const continued = sent[1] as { thread?: unknown; messages?: Array<{ role: string; content: unknown }> };
    expect(continued.thread).toMatchObject({ type: "continue" });
    expect(continued.messages).toHaveLength(1);
    expect(JSON.stringify(continued.messages?.[0]?.content)).toContain("tool_result");

    // What the model saw on the second turn: system, the question, its own tool call, the result.
    const upstream = neuron.received[1];
    expect(upstream?.messages.map((message) => message.role)).toEqual([
      "system",
      "user",
      "assistant",
      "tool",
    ]);
    expect(JSON.stringify(upstream?.messages[1]?.content)).toContain("Weather in Bern?");
    expect(upstream?.messages[2]?.tool_calls?.[0]?.function.name).toBe("get_weather");
    expect(JSON.stringify(upstream?.messages[3]?.content)).toContain("sunny in Bern");
    expect(upstream?.tools?.[0]?.function.name).toBe("get_weather");
  });
});
