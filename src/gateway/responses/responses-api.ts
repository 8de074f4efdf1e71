/**
 * The OpenAI Responses API at the gateway: `POST /v1/responses` through the
 * chat pipeline (canonical request in, canonical parts out), and the stored
 * responses behind `previous_response_id`, `GET`/`DELETE /v1/responses/{id}`
 * and `GET /v1/responses/{id}/input_items`. Errors are thrown; the HTTP
 * layer renders them in OpenAI's envelope.
 */
import { CortexError } from "../../core/errors.ts";
import { logger } from "../../core/logger.ts";
import type { CanonicalStreamPart } from "../../dialects/canonical.ts";
import { parseResponsesRequest, type ResponsesItem } from "../../dialects/responses/parse-request.ts";
import {
  inputItemId,
  newResponseId,
  type ResponseFrame,
  type ResponsesResponse,
  renderResponsesResponse,
} from "../../dialects/responses/render-response.ts";
import { ResponsesStreamEncoder } from "../../dialects/responses/stream-encoder.ts";
import { type ChatContext, type ChatPipelineDeps, completeChat, startChat } from "../chat-pipeline.ts";
import { NOT_YET, type PartSource, relaySse } from "../part-source.ts";
import type { ResponseStore, StoredResponse } from "./response-store.ts";

const log = logger("responses");

/** Each unknown request field is logged once per process, not once per request. */
const warnedFields = new Set<string>();

function warnUnknownField(name: string): void {
  if (warnedFields.has(name)) return;
  warnedFields.add(name);
  log.warn(`POST /v1/responses: unknown field "${name}" ignored (logged once)`);
}

export interface ResponsesDeps extends ChatPipelineDeps {
  store: ResponseStore;
}

export type CreatedResponse =
  | { stream: false; body: ResponsesResponse }
  | { stream: true; body: ReadableStream<Uint8Array> | Uint8Array };

function notFound(id: string, param?: string): CortexError {
  return new CortexError(
    "not_found",
    `${param === undefined ? "Response" : "Previous response"} with id '${id}' not found.`,
    param === undefined ? {} : { param },
  );
}

/** `POST /v1/responses`. */
export async function createResponse(
  deps: ResponsesDeps,
  body: unknown,
  ctx: ChatContext,
): Promise<CreatedResponse> {
  const parsed = parseResponsesRequest(body, { onUnknownField: warnUnknownField });
  let history: ResponsesItem[] = [];
  if (parsed.previousResponseId !== null) {
    const previous = await deps.store.get(parsed.previousResponseId);
    if (previous === undefined) throw notFound(parsed.previousResponseId, "previous_response_id");
    history = previous.conversation;
  }
  const canonical = parsed.toCanonical(history);
  const { toCanonical: _, input: __, stream: ___, ...echo } = parsed;
  const frame: ResponseFrame = {
    id: newResponseId(),
    createdAt: Math.floor(Date.now() / 1000),
    request: echo,
  };
  const input = parsed.input.map((item, i) =>
    typeof item.id === "string" ? item : { id: inputItemId(frame.id, item, i), ...item },
  );
  const persist = async (response: ResponsesResponse): Promise<void> => {
    if (!parsed.store) return;
    const record: StoredResponse = {
      response,
      input,
      conversation: [...history, ...input, ...(response.output as unknown as ResponsesItem[])],
    };
    try {
      if (!(await deps.store.put(response.id, record)))
        log.warn(
          `response ${response.id} is larger than responses.max_entry_bytes and was not stored; continuing it will be a 404`,
        );
    } catch (error) {
      // The answer stands; only its continuation is lost.
      log.error(`could not store response ${response.id}: ${String(error)}`);
    }
  };

  if (!parsed.stream) {
    const { response } = await completeChat(deps, canonical, ctx);
    const rendered = renderResponsesResponse(frame, response, Math.floor(Date.now() / 1000));
    await persist(rendered);
    return { stream: false, body: rendered };
  }
  const chat = await startChat(deps, canonical, ctx);
  const encoder = new ResponsesStreamEncoder(frame);
  return { stream: true, body: await relaySse(persistAtEnd(chat.parts, encoder, persist), encoder) };
}

/**
 * `source`, which before it ends stores the finished response (the encoder
 * has seen every part by then: relaySse encodes each batch before the next
 * read), so a follow-up sent as soon as the client reads response.completed
 * finds it, whichever gateway replica it reaches.
 */
function persistAtEnd(
  source: PartSource,
  encoder: ResponsesStreamEncoder,
  persist: (response: ResponsesResponse) => Promise<void>,
): PartSource {
  let ended = false;
  const finish = async (): Promise<undefined> => {
    const final = encoder.finalResponse();
    if (final !== undefined) await persist(final);
    return undefined;
  };
  return {
    get done() {
      return source.done;
    },
    async read(): Promise<CanonicalStreamPart[] | undefined> {
      if (ended) return finish();
      const batch = await source.read();
      if (batch !== undefined) return batch;
      ended = true;
      return finish();
    },
    readNow() {
      if (ended) return NOT_YET;
      const batch = source.readNow();
      if (batch !== undefined) return batch;
      // The end: read() stores the response, which may take a round trip.
      ended = true;
      return NOT_YET;
    },
    cancel(reason) {
      return source.cancel(reason);
    },
  };
}

/** `GET /v1/responses/{id}`. */
export async function retrieveResponse(store: ResponseStore, id: string): Promise<ResponsesResponse> {
  const stored = await store.get(id);
  if (stored === undefined) throw notFound(id);
  return stored.response;
}

/** `DELETE /v1/responses/{id}`. */
export async function deleteResponse(
  store: ResponseStore,
  id: string,
): Promise<{ id: string; object: "response.deleted"; deleted: true }> {
  if (!(await store.delete(id))) throw notFound(id);
  return { id, object: "response.deleted", deleted: true };
}

/** `GET /v1/responses/{id}/input_items` with OpenAI's cursor paging (`after`, `limit`, `order`). */
export async function listInputItems(
  store: ResponseStore,
  id: string,
  query: URLSearchParams,
): Promise<{
  object: "list";
  data: ResponsesItem[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}> {
  const stored = await store.get(id);
  if (stored === undefined) throw notFound(id);
  const limitText = query.get("limit") ?? "20";
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new CortexError("invalid_request", `limit: expected an integer from 1 to 100, got ${limitText}`, {
      param: "limit",
    });
  const order = query.get("order") ?? "desc";
  if (order !== "asc" && order !== "desc")
    throw new CortexError("invalid_request", `order: expected "asc" or "desc", got ${order}`, {
      param: "order",
    });
  let items = order === "desc" ? [...stored.input].reverse() : stored.input;
  const after = query.get("after");
  if (after !== null) {
    const at = items.findIndex((item) => item.id === after);
    if (at < 0) throw new CortexError("invalid_request", `after: no input item ${after}`, { param: "after" });
    items = items.slice(at + 1);
  }
  const data = items.slice(0, limit);
  return {
    object: "list",
    data,
    first_id: (data[0]?.id as string | undefined) ?? null,
    last_id: (data.at(-1)?.id as string | undefined) ?? null,
    has_more: items.length > limit,
  };
}
