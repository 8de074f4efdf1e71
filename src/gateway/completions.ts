/**
 * `POST /v1/completions` through the chat pipeline: each prompt is a chat
 * request that carries its raw prompt past the neuron's chat template
 * (`cortex_completion`), so routing, admission, load on demand, failover and
 * metrics are the chat's. Several prompts of one plain request run side by
 * side and come back as one answer's choices, in order.
 */
import { logger } from "../core/logger.ts";
import {
  CompletionsStreamEncoder,
  parseCompletionsRequest,
  renderCompletionsResponse,
} from "../dialects/openai/completions.ts";
import { type ChatContext, type ChatPipelineDeps, completeChat, startChat } from "./chat-pipeline.ts";
import { relaySse } from "./part-source.ts";

const log = logger("completions");
/** Each unknown request field is logged once per process, not once per request. */
const warnedFields = new Set<string>();

function warnUnknownField(name: string): void {
  if (warnedFields.has(name)) return;
  warnedFields.add(name);
  log.warn(`POST /v1/completions: unknown field "${name}" ignored (logged once)`);
}

export type CompletionsAnswer =
  | { stream: true; body: ReadableStream<Uint8Array> | Uint8Array }
  | { stream: false; body: unknown };

/** Throws (a CortexError) for anything known before the answer; the caller renders it. */
export async function createCompletions(
  deps: ChatPipelineDeps,
  body: unknown,
  ctx: ChatContext,
): Promise<CompletionsAnswer> {
  const requests = parseCompletionsRequest(body, { onUnknownField: warnUnknownField });
  const first = requests[0];
  if (first === undefined) throw new Error("parseCompletionsRequest returned no request");
  if (first.stream) {
    const chat = await startChat(deps, first, ctx);
    const encoder = new CompletionsStreamEncoder({ model: first.model, includeUsage: first.includeUsage });
    return { stream: true, body: await relaySse(chat.parts, encoder) };
  }
  const answers = await Promise.all(requests.map((request) => completeChat(deps, request, ctx)));
  return {
    stream: false,
    body: renderCompletionsResponse(
      answers.map((answer) => answer.response),
      first.model,
    ),
  };
}
