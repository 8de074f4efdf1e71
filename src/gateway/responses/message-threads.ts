/**
 * Anthropic message threads at the gateway: a `thread` on `POST /v1/messages`
 * is resolved against the conversation store before the request is parsed
 * (a continuation becomes the whole conversation), and the reply's thread is
 * stored under its `msg_…` id before the client can see the end of it, so a
 * continuation sent as soon as the reply ends finds it on any replica.
 */
import { logger } from "../../core/logger.ts";
import { renderAnthropicResponse } from "../../dialects/anthropic/render-response.ts";
import {
  continueThread,
  parseThreadParam,
  type StoredThread,
  threadAfter,
  threadNotFound,
  withoutThread,
} from "../../dialects/anthropic/thread.ts";
import type { CanonicalResponse, CanonicalStreamPart } from "../../dialects/canonical.ts";
import { CanonicalAccumulator } from "../../dialects/collect-stream.ts";
import { newId } from "../../dialects/ids.ts";
import { NOT_YET, type PartSource } from "../part-source.ts";
import { JsonRecords, type RecordStore } from "./record-store.ts";

const log = logger("threads");

export type ThreadStore = JsonRecords<StoredThread>;

export function threadStore(records: RecordStore): ThreadStore {
  return new JsonRecords<StoredThread>(records, "message");
}

export interface OpenedThread {
  /** The request to parse: the whole conversation, without `thread`. */
  body: unknown;
  /** The reply's id, fixed up front so the stored thread and the reply agree. */
  messageId: string;
  /** Stores the thread as it stands after `response`; undefined for a request without `thread`. */
  keep: ((response: CanonicalResponse, model: string) => Promise<void>) | undefined;
}

/** Resolves the request's `thread` (a 404 `thread_not_found` when a continuation has nothing stored). */
export async function openThread(
  store: ThreadStore,
  body: unknown,
  requestId: string,
): Promise<OpenedThread> {
  const messageId = newId("msg_01");
  const thread = parseThreadParam(body);
  if (thread === undefined) return { body, messageId, keep: undefined };
  const request = body as Record<string, unknown>;
  let whole: Record<string, unknown>;
  if (thread.type === "create") whole = withoutThread(request);
  else {
    const stored = await store.get(thread.previousMessageId);
    if (stored === undefined) throw threadNotFound(thread.previousMessageId);
    whole = continueThread(request, stored);
  }
  const keep = async (response: CanonicalResponse, model: string): Promise<void> => {
    const reply = renderAnthropicResponse(response, { messageId, model });
    try {
      if (!(await store.put(messageId, threadAfter(whole, reply))))
        log.warn(
          `request_id=${requestId}: thread ${messageId} is larger than responses.max_entry_bytes and was not stored; continuing it will be a 404`,
        );
    } catch (error) {
      // The answer stands; a continuation gets thread_not_found and the SDK replays the whole history.
      log.error(
        `request_id=${requestId}: could not store thread ${messageId}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  };
  return { body: whole, messageId, keep };
}

/**
 * `source`, which stores the thread once the answer is complete, before the
 * batch that completes it (the one with `usage`, which the encoder turns into
 * message_delta and message_stop) goes on to the client.
 */
export function keepThreadAtEnd(
  source: PartSource,
  keep: (response: CanonicalResponse) => Promise<void>,
): PartSource {
  const answer = new CanonicalAccumulator();
  let finished = false;
  let held: CanonicalStreamPart[] | undefined;
  /** True when `batch` completes the answer (and it has not been kept yet). */
  const completes = (batch: CanonicalStreamPart[]): boolean => {
    let error = false;
    for (const part of batch) {
      answer.push(part);
      if (part.type === "error") error = true;
    }
    if (finished || error || !batch.some((part) => part.type === "usage")) return false;
    finished = true;
    return true;
  };
  const keepAnswer = async (): Promise<void> => {
    try {
      await keep(answer.result());
    } catch {
      // An answer that failed has no thread to keep.
    }
  };
  return {
    get done() {
      return held === undefined && source.done;
    },
    async read() {
      if (held !== undefined) {
        const batch = held;
        held = undefined;
        await keepAnswer();
        return batch;
      }
      const batch = await source.read();
      if (batch !== undefined && completes(batch)) await keepAnswer();
      return batch;
    },
    readNow() {
      if (held !== undefined) return NOT_YET;
      const batch = source.readNow();
      if (batch === NOT_YET || batch === undefined) return batch;
      if (!completes(batch)) return batch;
      // Storing takes a round trip: read() hands this batch on once it is stored.
      held = batch;
      return NOT_YET;
    },
    cancel(reason) {
      return source.cancel(reason);
    },
  };
}
