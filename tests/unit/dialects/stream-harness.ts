/** Shared plumbing for the stream tests: replay upstream SSE text, encode, read back. */
import { expect } from "bun:test";
import {
  AnthropicStreamEncoder,
  type AnthropicStreamOptions,
} from "../../../src/dialects/anthropic/stream-encoder.ts";
import type { CanonicalStreamPart } from "../../../src/dialects/canonical.ts";
import {
  OpenAIStreamEncoder,
  type OpenAIStreamOptions,
} from "../../../src/dialects/openai/stream-encoder.ts";
import { UpstreamStreamDecoder } from "../../../src/dialects/openai/upstream.ts";
import { SseDecoder } from "../../../src/dialects/sse/sse-parser.ts";

export async function fixture(name: string): Promise<string> {
  return Bun.file(new URL(`./__fixtures__/${name}`, import.meta.url)).text();
}

/** Upstream SSE text, fed in the given pieces, → canonical parts. */
export function decodeUpstream(pieces: string[]): CanonicalStreamPart[] {
  const sse = new SseDecoder();
  const decoder = new UpstreamStreamDecoder("fallback-model");
  const parts: CanonicalStreamPart[] = [];
  for (const piece of pieces) for (const event of sse.push(piece)) parts.push(...decoder.push(event));
  for (const event of sse.end()) parts.push(...decoder.push(event));
  parts.push(...decoder.end());
  return parts;
}

export function encodeAnthropic(parts: CanonicalStreamPart[], options: AnthropicStreamOptions): string {
  const encoder = new AnthropicStreamEncoder(options);
  return [...parts.flatMap((p) => encoder.push(p)), ...encoder.end()].join("");
}

export function encodeOpenAI(parts: CanonicalStreamPart[], options: OpenAIStreamOptions): string {
  const encoder = new OpenAIStreamEncoder(options);
  return [...parts.flatMap((p) => encoder.push(p)), ...encoder.end()].join("");
}

export function sseEvents(text: string): Array<{ event: string; data: string }> {
  const decoder = new SseDecoder();
  return [...decoder.push(text), ...decoder.end()].map(({ event, data }) => ({ event, data }));
}

type Json = Record<string, unknown>;

/**
 * Reads Anthropic SSE the way the SDK's MessageStream does, and also checks
 * the grammar: every frame's `event:` matches its `type`, blocks are started
 * before deltas and stopped exactly once, message_stop comes last.
 */
export function accumulateAnthropic(text: string): Json {
  let message: Json | undefined;
  const open = new Set<number>();
  const stopped = new Set<number>();
  const jsonBuffers = new Map<number, string>();
  let ended = false;
  for (const { event, data } of sseEvents(text)) {
    const frame = JSON.parse(data) as Json;
    expect(frame.type).toBe(event);
    expect(ended).toBe(false);
    const index = frame.index as number;
    const content = () => (message as { content: Json[] }).content;
    switch (event) {
      case "message_start":
        expect(message).toBeUndefined();
        message = structuredClone(frame.message as Json);
        break;
      case "content_block_start":
        expect(index).toBe(content().length);
        open.add(index);
        content().push(structuredClone(frame.content_block as Json));
        break;
      case "content_block_delta": {
        expect(open.has(index) || stopped.has(index)).toBe(true);
        const block = content()[index]!;
        const delta = frame.delta as Json;
        if (delta.type === "text_delta") block.text = `${block.text}${delta.text}`;
        else if (delta.type === "thinking_delta") block.thinking = `${block.thinking}${delta.thinking}`;
        else if (delta.type === "input_json_delta")
          jsonBuffers.set(index, (jsonBuffers.get(index) ?? "") + (delta.partial_json as string));
        else throw new Error(`unexpected delta ${String(delta.type)}`);
        break;
      }
      case "content_block_stop":
        expect(open.has(index)).toBe(true);
        open.delete(index);
        stopped.add(index);
        break;
      case "message_delta": {
        expect(open.size).toBe(0);
        const m = message as Json & { usage: Json };
        Object.assign(m, frame.delta as Json);
        Object.assign(m.usage, frame.usage as Json);
        break;
      }
      case "message_stop":
        ended = true;
        break;
      case "ping":
        break;
      case "error":
        return { error: frame.error };
      default:
        throw new Error(`unexpected event ${event}`);
    }
  }
  expect(ended).toBe(true);
  for (const [index, json] of jsonBuffers) {
    const block = (message as { content: Json[] }).content[index]!;
    block.input = json === "" ? {} : JSON.parse(json);
  }
  return message as Json;
}

/** Reads OpenAI chunk SSE into the `chat.completion` it adds up to (the SDK's accumulation, simplified). */
export function accumulateOpenAI(text: string): Json {
  const events = sseEvents(text);
  expect(events.at(-1)?.data).toBe("[DONE]");
  let completion: Json | undefined;
  const message: Json & { tool_calls?: Json[] } = { role: "assistant", content: null, refusal: null };
  let finish: unknown = null;
  for (const { data } of events.slice(0, -1)) {
    const chunk = JSON.parse(data) as Json & { choices: Json[] };
    expect(chunk.object).toBe("chat.completion.chunk");
    completion ??= { id: chunk.id, object: "chat.completion", created: chunk.created, model: chunk.model };
    if (chunk.usage) completion.usage = chunk.usage;
    const choice = chunk.choices[0] as (Json & { delta: Json }) | undefined;
    if (!choice) continue;
    const delta = choice.delta as Json & { tool_calls?: Json[] };
    if (typeof delta.content === "string") message.content = `${message.content ?? ""}${delta.content}`;
    if (typeof delta.reasoning_content === "string")
      message.reasoning_content = `${message.reasoning_content ?? ""}${delta.reasoning_content}`;
    for (const call of delta.tool_calls ?? []) {
      message.tool_calls ??= [];
      const fn = call.function as Json;
      const existing = message.tool_calls[call.index as number] as (Json & { function: Json }) | undefined;
      if (existing) existing.function.arguments = `${existing.function.arguments}${fn.arguments}`;
      else message.tool_calls[call.index as number] = { id: call.id, type: "function", function: { ...fn } };
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  return {
    ...completion,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
  };
}
