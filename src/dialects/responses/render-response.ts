/**
 * Canonical response → OpenAI Responses API `response` object. The stream
 * encoder ends with the same object (built by these functions from the same
 * parts), so a streamed answer, a plain one and the stored one agree,
 * item ids included.
 */
import { assertNever, type CanonicalResponse, type CanonicalUsage } from "../canonical.ts";
import type { ResponsesItem, ResponsesRequest } from "./parse-request.ts";

export interface ResponsesUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export interface OutputText {
  type: "output_text";
  text: string;
  annotations: never[];
  logprobs: never[];
}

export type OutputItem =
  | {
      type: "message";
      id: string;
      status: "in_progress" | "completed" | "incomplete";
      role: "assistant";
      content: OutputText[];
    }
  | {
      type: "function_call";
      id: string;
      call_id: string;
      name: string;
      arguments: string;
      status: "in_progress" | "completed" | "incomplete";
    }
  | {
      type: "reasoning";
      id: string;
      summary: never[];
      content: Array<{ type: "reasoning_text"; text: string }>;
      status?: "in_progress" | "completed" | "incomplete";
    };

export type ResponseStatus = "in_progress" | "completed" | "incomplete" | "failed";

export interface ResponsesResponse {
  id: string;
  object: "response";
  created_at: number;
  completed_at: number | null;
  status: ResponseStatus;
  error: { code: string; message: string } | null;
  incomplete_details: { reason: "max_output_tokens" } | null;
  instructions: string | null;
  max_output_tokens: number | null;
  model: string;
  output: OutputItem[];
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: unknown;
  store: boolean;
  temperature: number | null;
  text: { format: Record<string, unknown> };
  tool_choice: string | Record<string, unknown>;
  tools: Array<Record<string, unknown>>;
  top_p: number | null;
  truncation: "auto" | "disabled";
  usage: ResponsesUsage | null;
  user: string | null;
  metadata: Record<string, string>;
  background: false;
  service_tier: "default";
}

/** What a response echoes of its request, and its id and creation time. */
export interface ResponseFrame {
  id: string;
  /** Unix seconds. */
  createdAt: number;
  request: Omit<ResponsesRequest, "toCanonical" | "input" | "stream">;
}

const ALPHABET = "0123456789abcdef";

/** A response id in OpenAI's style: `resp_` and 48 hex digits. */
export function newResponseId(): string {
  let out = "resp_";
  for (const byte of crypto.getRandomValues(new Uint8Array(24)))
    out += `${ALPHABET[byte >> 4]}${ALPHABET[byte & 15]}`;
  return out;
}

/** The id of the response's `index`th output item: derived, so every rendering of it agrees. */
export function outputItemId(responseId: string, kind: OutputItem["type"], index: number): string {
  const prefix = kind === "message" ? "msg" : kind === "function_call" ? "fc" : "rs";
  return `${prefix}_${responseId.slice(5)}${index.toString(16).padStart(2, "0")}`;
}

/** The id of the `index`th input item of a response (for GET …/input_items). */
export function inputItemId(responseId: string, item: ResponsesItem, index: number): string {
  const prefix = item.type === "message" ? "msg" : item.type === "function_call" ? "fc" : "item";
  return `${prefix}_in${responseId.slice(5)}${index.toString(16).padStart(4, "0")}`;
}

export function renderResponsesUsage(usage: CanonicalUsage): ResponsesUsage {
  return {
    input_tokens: usage.inputTokens,
    input_tokens_details: { cached_tokens: usage.cachedInputTokens ?? 0 },
    output_tokens: usage.outputTokens,
    output_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 },
    total_tokens: usage.inputTokens + usage.outputTokens,
  };
}

/** The response object before anything is generated (`response.created`). */
export function renderResponseShell(frame: ResponseFrame, status: ResponseStatus): ResponsesResponse {
  const { request } = frame;
  return {
    id: frame.id,
    object: "response",
    created_at: frame.createdAt,
    completed_at: null,
    status,
    error: null,
    incomplete_details: null,
    instructions: request.instructions,
    max_output_tokens: request.maxOutputTokens,
    model: request.model,
    output: [],
    parallel_tool_calls: request.parallelToolCalls,
    previous_response_id: request.previousResponseId,
    reasoning: request.reasoning ?? null,
    store: request.store,
    temperature: request.temperature,
    text: { format: request.textFormat },
    tool_choice: request.toolChoice,
    tools: request.tools.map((tool) => ({
      type: "function",
      name: tool.name,
      description: tool.description ?? null,
      parameters: tool.parameters ?? null,
      strict: tool.strict ?? null,
    })),
    top_p: request.topP,
    truncation: request.truncation,
    usage: null,
    user: request.user ?? null,
    metadata: request.metadata,
    background: false,
    service_tier: "default",
  };
}

/** The output items of a whole answer, in order, with derived ids. */
export function renderOutputItems(
  responseId: string,
  content: CanonicalResponse["content"],
  status: "completed" | "incomplete",
): OutputItem[] {
  const items: OutputItem[] = [];
  for (const part of content) {
    if (part.type !== "tool_call" && part.text === "") continue;
    const last = items.at(-1);
    switch (part.type) {
      case "text":
        if (last?.type === "message") {
          const text = last.content[0];
          if (text) text.text += part.text;
        } else {
          items.push({
            type: "message",
            id: outputItemId(responseId, "message", items.length),
            status: "completed",
            role: "assistant",
            content: [{ type: "output_text", text: part.text, annotations: [], logprobs: [] }],
          });
        }
        break;
      case "thinking":
        if (last?.type === "reasoning") {
          const text = last.content[0];
          if (text) text.text += part.text;
        } else {
          items.push({
            type: "reasoning",
            id: outputItemId(responseId, "reasoning", items.length),
            summary: [],
            content: [{ type: "reasoning_text", text: part.text }],
          });
        }
        break;
      case "tool_call":
        items.push({
          type: "function_call",
          id: outputItemId(responseId, "function_call", items.length),
          call_id: part.id,
          name: part.name,
          arguments: part.arguments,
          status: "completed",
        });
        break;
      default:
        assertNever(part, "content part");
    }
  }
  // Only the message the limit cut short is incomplete (as the stream closes it).
  const last = items.at(-1);
  if (status === "incomplete" && last?.type === "message") last.status = "incomplete";
  return items;
}

/** The whole answer as a `response` object, completed or (cut at max_output_tokens) incomplete. */
export function renderResponsesResponse(
  frame: ResponseFrame,
  response: Pick<CanonicalResponse, "content" | "finishReason" | "usage">,
  completedAt: number,
): ResponsesResponse {
  const incomplete = response.finishReason === "length";
  const status = incomplete ? "incomplete" : "completed";
  return {
    ...renderResponseShell(frame, status),
    completed_at: incomplete ? null : completedAt,
    incomplete_details: incomplete ? { reason: "max_output_tokens" } : null,
    output: renderOutputItems(frame.id, response.content, status),
    usage: renderResponsesUsage(response.usage),
  };
}
