/**
 * Stored Responses API answers (`store: true`, the default), so
 * `previous_response_id` can continue a conversation and
 * `GET`/`DELETE /v1/responses/{id}` find them: `response:<id>` records in the
 * gateway's RecordStore (memory, or the Redis the replicas share).
 */
import type { ResponsesItem } from "../../dialects/responses/parse-request.ts";
import type { ResponsesResponse } from "../../dialects/responses/render-response.ts";
import { JsonRecords, type RecordStore } from "./record-store.ts";

export interface StoredResponse {
  /** The response object as the client got it. */
  response: ResponsesResponse;
  /** This request's input items, with their ids (GET …/input_items). */
  input: ResponsesItem[];
  /** Every item of the conversation up to and including this response's output: what a follow-up continues. */
  conversation: ResponsesItem[];
}

export type ResponseStore = JsonRecords<StoredResponse>;

export function responseStore(records: RecordStore): ResponseStore {
  return new JsonRecords<StoredResponse>(records, "response");
}
