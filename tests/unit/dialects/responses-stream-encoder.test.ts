import { describe, expect, test } from "bun:test";
import type { CanonicalStreamPart } from "../../../src/dialects/canonical.ts";
import { parseResponsesRequest } from "../../../src/dialects/responses/parse-request.ts";
import {
  type ResponseFrame,
  renderResponsesResponse,
} from "../../../src/dialects/responses/render-response.ts";
import { ResponsesStreamEncoder } from "../../../src/dialects/responses/stream-encoder.ts";
import { SseDecoder } from "../../../src/dialects/sse/sse-parser.ts";

function frameFor(body: Record<string, unknown>): ResponseFrame {
  const {
    toCanonical: _,
    input: __,
    stream: ___,
    ...request
  } = parseResponsesRequest({
    model: "m",
    input: "hi",
    ...body,
  });
  return { id: "resp_0123456789abcdef0123456789abcdef0123456789abcdef", createdAt: 1, request };
}

interface Event {
  type: string;
  sequence_number: number;
  [key: string]: unknown;
}

function encode(parts: CanonicalStreamPart[], frame = frameFor({})): { events: Event[]; names: string[] } {
  const encoder = new ResponsesStreamEncoder(frame);
  let text = "";
  for (const part of parts) for (const chunk of encoder.push(part)) text += chunk;
  for (const chunk of encoder.end()) text += chunk;
  const parser = new SseDecoder();
  const messages = [...parser.push(text), ...parser.end()];
  return {
    events: messages.map((message) => JSON.parse(message.data) as Event),
    names: messages.map((message) => message.event),
  };
}

const usage: CanonicalStreamPart = { type: "usage", usage: { inputTokens: 7, outputTokens: 5 } };

describe("ResponsesStreamEncoder", () => {
  test("reasoning, text and a function call: each item opens and closes in order, and the end equals the plain rendering", () => {
    const parts: CanonicalStreamPart[] = [
      { type: "message_start", id: "x", model: "m", created: 1 },
      { type: "thinking_delta", text: "Think" },
      { type: "text_delta", text: "Hel" },
      { type: "text_delta", text: "lo" },
      { type: "tool_call_start", index: 0, id: "call_1", name: "f" },
      { type: "tool_call_delta", index: 0, argumentsDelta: '{"a":' },
      { type: "tool_call_delta", index: 0, argumentsDelta: "1}" },
      { type: "tool_call_end", index: 0 },
      { type: "finish", reason: "tool_calls" },
      usage,
    ];
    const { events, names } = encode(parts);
    expect(names).toEqual(events.map((event) => event.type));
    expect(events.map((event) => event.sequence_number)).toEqual(events.map((_, i) => i));
    expect(names).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.reasoning_text.delta",
      "response.reasoning_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const completed = events.at(-1)?.response as ReturnType<typeof renderResponsesResponse>;
    const plain = renderResponsesResponse(
      frameFor({}),
      {
        content: [
          { type: "thinking", text: "Think" },
          { type: "text", text: "Hello" },
          { type: "tool_call", id: "call_1", name: "f", arguments: '{"a":1}' },
        ],
        finishReason: "tool_calls",
        usage: { inputTokens: 7, outputTokens: 5 },
      },
      completed.completed_at ?? 0,
    );
    expect(completed).toEqual(plain);
    const doneItems = events.filter((event) => event.type === "response.output_item.done").map((e) => e.item);
    expect(doneItems).toEqual(plain.output);
    expect(plain.output.map((item) => item.id)).toEqual([
      "rs_0123456789abcdef0123456789abcdef0123456789abcdef00",
      "msg_0123456789abcdef0123456789abcdef0123456789abcdef01",
      "fc_0123456789abcdef0123456789abcdef0123456789abcdef02",
    ]);
  });

  test("a failure mid-stream is an error event, then response.failed with what was done", () => {
    const { names, events } = encode([
      { type: "text_delta", text: "Hi" },
      { type: "error", error: { code: "device_fault", message: "boom", status: 503 } },
    ]);
    expect(names.slice(-2)).toEqual(["error", "response.failed"]);
    expect(events.at(-2)).toMatchObject({ code: "device_fault", message: "boom" });
    expect(events.at(-1)?.response).toMatchObject({
      status: "failed",
      error: { code: "server_error", message: "boom" },
    });
  });

  test("a stream that ends without finishing fails instead of completing", () => {
    const { names } = encode([{ type: "text_delta", text: "Hi" }]);
    expect(names.slice(-2)).toEqual(["error", "response.failed"]);
  });

  test("length is response.incomplete with max_output_tokens", () => {
    const { events } = encode([
      { type: "text_delta", text: "Hi" },
      { type: "finish", reason: "length" },
      usage,
    ]);
    expect(events.at(-1)).toMatchObject({
      type: "response.incomplete",
      response: { status: "incomplete", incomplete_details: { reason: "max_output_tokens" } },
    });
  });
});
