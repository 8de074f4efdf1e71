/**
 * Anthropic's message-threads beta (`anthropic-beta: message-threads-2026-08-12`),
 * as pure functions: the `thread` request field, a stored thread (the
 * conversation in the client's own words, so a continuation is parsed like
 * any request), and the errors the SDK's thread reads by `error_code`.
 *
 * `{type: "create"}` asks the server to keep the conversation under the
 * reply's `id`; `{type: "continue", previous_message_id}` sends only the new
 * turn, and the server puts the stored conversation (with its `system` and
 * `tools`, which the request leaves out) in front of it.
 */
import { z } from "zod";
import { CortexError } from "../../core/errors.ts";
import type { AnthropicMessage } from "./render-response.ts";

export type ThreadParam = { type: "create" } | { type: "continue"; previousMessageId: string };

const ThreadSchema = z.union([
  z.strictObject({ type: z.literal("create") }),
  z.strictObject({ type: z.literal("continue"), previous_message_id: z.string().min(1) }),
]);

/** What a thread keeps between turns: the request fields a continuation takes from it, and the whole history. */
export interface StoredThread {
  system?: unknown;
  tools?: unknown;
  messages: unknown[];
}

type Body = Record<string, unknown>;

function invalid(message: string): CortexError {
  return new CortexError("invalid_request", `thread: ${message}`, { param: "thread" });
}

/** The request's `thread`, or undefined when it has none. */
export function parseThreadParam(body: unknown): ThreadParam | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  const thread = (body as Body).thread;
  if (thread === undefined || thread === null) return undefined;
  const parsed = ThreadSchema.safeParse(thread);
  if (!parsed.success)
    throw invalid('expected {"type": "create"} or {"type": "continue", "previous_message_id": "msg_…"}');
  return parsed.data.type === "create"
    ? { type: "create" }
    : { type: "continue", previousMessageId: parsed.data.previous_message_id };
}

/** Anthropic's 404 for a `previous_message_id` with nothing stored (unknown, expired, or another store's). */
export function threadNotFound(id: string): CortexError {
  return new CortexError(
    "not_found",
    `thread: no thread state found for previous_message_id '${id}' (unknown or expired); replay the full conversation with thread {"type": "create"}`,
    { param: "thread.previous_message_id", details: { error_code: "thread_not_found" } },
  );
}

/** `body` without its `thread`: the request as it would be sent whole. */
export function withoutThread(body: Body): Body {
  const { thread: _, ...rest } = body;
  return rest;
}

/**
 * The whole request a continuation stands for: the stored conversation, then
 * this turn's messages, under the thread's `system` and `tools`. A request
 * that repeats them must repeat them unchanged (`thread_fingerprint_mismatch`).
 */
export function continueThread(body: Body, stored: StoredThread): Body {
  const changed = (["system", "tools"] as const).filter(
    (field) => body[field] !== undefined && JSON.stringify(body[field]) !== JSON.stringify(stored[field]),
  );
  if (changed.length > 0)
    throw new CortexError(
      "invalid_request",
      `thread: ${changed.map((field) => `\`${field}\``).join(" and ")} differ from the thread's; a continuation uses the ones the thread was created with`,
      { param: "thread", details: { error_code: "thread_fingerprint_mismatch" } },
    );
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const whole: Body = { ...withoutThread(body), messages: [...stored.messages, ...messages] };
  if (stored.system !== undefined) whole.system = stored.system;
  if (stored.tools !== undefined) whole.tools = stored.tools;
  return whole;
}

/** The thread to keep under `reply.id`: the whole request's conversation and the reply as the assistant's turn. */
export function threadAfter(whole: Body, reply: AnthropicMessage): StoredThread {
  const messages = Array.isArray(whole.messages) ? whole.messages : [];
  const thread: StoredThread = {
    messages: [...messages, { role: "assistant", content: reply.content }],
  };
  if (whole.system !== undefined) thread.system = whole.system;
  if (whole.tools !== undefined) thread.tools = whole.tools;
  return thread;
}
