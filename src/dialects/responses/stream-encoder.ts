/**
 * Canonical stream parts → OpenAI Responses API SSE events, each with its
 * `event:` line and a `sequence_number` from 0: response.created,
 * response.in_progress, then per output item output_item.added,
 * content_part.added, the deltas and their .done, content_part.done,
 * output_item.done; then response.completed or response.incomplete (cut at
 * max_output_tokens). A failure mid-stream is an `error` event followed by
 * response.failed. The last event carries the whole response, built by
 * render-response.ts from the same parts, so it equals the plain answer.
 */
import { CortexError } from "../../core/errors.ts";
import { assertNever, type CanonicalStreamPart, type FinishReason } from "../canonical.ts";
import { CanonicalAccumulator } from "../collect-stream.ts";
import { encodeSseJson } from "../sse/sse-parser.ts";
import {
  type OutputItem,
  outputItemId,
  type ResponseFrame,
  type ResponsesResponse,
  renderResponseShell,
  renderResponsesResponse,
} from "./render-response.ts";

type OpenItem =
  | { kind: "message" | "reasoning"; id: string; index: number; text: string }
  | { kind: "function_call"; id: string; index: number; callId: string; name: string; arguments: string };

/** Pure state machine: each `push` returns the SSE frames for one part. */
export class ResponsesStreamEncoder {
  readonly #frame: ResponseFrame;
  readonly #accumulator = new CanonicalAccumulator();
  readonly #done: OutputItem[] = [];
  #sequence = 0;
  #started = false;
  #closed = false;
  #open: OpenItem | undefined;
  #finish: FinishReason | undefined;
  #final: ResponsesResponse | undefined;

  constructor(frame: ResponseFrame) {
    this.#frame = frame;
  }

  push(part: CanonicalStreamPart): string[] {
    if (this.#closed) return [];
    const frames = this.#start();
    switch (part.type) {
      case "message_start":
        return frames;
      case "text_delta":
      case "thinking_delta": {
        if (part.text === "") return frames;
        this.#accumulator.push(part);
        const kind = part.type === "text_delta" ? "message" : "reasoning";
        let open = this.#open;
        if (open?.kind !== kind) {
          frames.push(...this.#closeOpen());
          open = this.#openText(kind, frames);
        }
        if (open.kind === "function_call") return frames;
        open.text += part.text;
        frames.push(
          this.#event(kind === "message" ? "response.output_text.delta" : "response.reasoning_text.delta", {
            item_id: open.id,
            output_index: open.index,
            content_index: 0,
            delta: part.text,
            ...(kind === "message" ? { logprobs: [] } : {}),
          }),
        );
        return frames;
      }
      case "tool_call_start": {
        this.#accumulator.push(part);
        frames.push(...this.#closeOpen());
        const index = this.#done.length;
        const open: OpenItem = {
          kind: "function_call",
          id: outputItemId(this.#frame.id, "function_call", index),
          index,
          callId: part.id,
          name: part.name,
          arguments: "",
        };
        this.#open = open;
        frames.push(
          this.#event("response.output_item.added", {
            output_index: index,
            item: this.#functionItem(open, "in_progress"),
          }),
        );
        return frames;
      }
      case "tool_call_delta": {
        this.#accumulator.push(part);
        const open = this.#open;
        if (open?.kind !== "function_call" || part.argumentsDelta === "") return frames;
        open.arguments += part.argumentsDelta;
        frames.push(
          this.#event("response.function_call_arguments.delta", {
            item_id: open.id,
            output_index: open.index,
            delta: part.argumentsDelta,
          }),
        );
        return frames;
      }
      case "tool_call_end":
        this.#accumulator.push(part);
        frames.push(...this.#closeOpen());
        return frames;
      case "finish":
        this.#accumulator.push(part);
        this.#finish = part.reason;
        frames.push(...this.#closeOpen());
        return frames;
      case "usage":
        this.#accumulator.push(part);
        return frames;
      case "error":
        frames.push(...this.#fail(CortexError.fromWire(part.error)));
        return frames;
      default:
        return assertNever(part, "stream part");
    }
  }

  end(): string[] {
    if (this.#closed) return [];
    const frames = this.#start();
    const final = this.finalResponse();
    if (final === undefined)
      return [
        ...frames,
        ...this.#fail(new CortexError("upstream_error", "upstream stream ended before it finished")),
      ];
    this.#closed = true;
    frames.push(
      this.#event(final.status === "incomplete" ? "response.incomplete" : "response.completed", {
        response: final,
      }),
    );
    return frames;
  }

  /**
   * The whole response once the answer has finished (the same object the
   * last event carries), or undefined before that and after a failure.
   */
  finalResponse(): ResponsesResponse | undefined {
    if (this.#final !== undefined) return this.#final;
    if (this.#finish === undefined || this.#closed) return undefined;
    this.#final = renderResponsesResponse(
      this.#frame,
      this.#accumulator.result(),
      Math.floor(Date.now() / 1000),
    );
    return this.#final;
  }

  #start(): string[] {
    if (this.#started) return [];
    this.#started = true;
    const shell = renderResponseShell(this.#frame, "in_progress");
    return [
      this.#event("response.created", { response: shell }),
      this.#event("response.in_progress", { response: shell }),
    ];
  }

  #openText(kind: "message" | "reasoning", frames: string[]): OpenItem {
    const index = this.#done.length;
    const open: OpenItem = { kind, id: outputItemId(this.#frame.id, kind, index), index, text: "" };
    this.#open = open;
    const item: OutputItem =
      kind === "message"
        ? { type: "message", id: open.id, status: "in_progress", role: "assistant", content: [] }
        : { type: "reasoning", id: open.id, summary: [], content: [] };
    frames.push(this.#event("response.output_item.added", { output_index: index, item }));
    frames.push(
      this.#event("response.content_part.added", {
        item_id: open.id,
        output_index: index,
        content_index: 0,
        part: textPart(kind, ""),
      }),
    );
    return open;
  }

  /** The .done events of the open item; it joins the finished output. */
  #closeOpen(): string[] {
    const open = this.#open;
    if (open === undefined) return [];
    this.#open = undefined;
    const status = this.#finish === "length" ? "incomplete" : "completed";
    if (open.kind === "function_call") {
      const item = this.#functionItem(open, "completed");
      this.#done.push(item);
      return [
        this.#event("response.function_call_arguments.done", {
          item_id: open.id,
          output_index: open.index,
          name: open.name,
          arguments: open.arguments,
        }),
        this.#event("response.output_item.done", { output_index: open.index, item }),
      ];
    }
    const part = textPart(open.kind, open.text);
    const item: OutputItem =
      open.kind === "message"
        ? {
            type: "message",
            id: open.id,
            status,
            role: "assistant",
            content: [{ type: "output_text", text: open.text, annotations: [], logprobs: [] }],
          }
        : {
            type: "reasoning",
            id: open.id,
            summary: [],
            content: [{ type: "reasoning_text", text: open.text }],
          };
    this.#done.push(item);
    const where = { item_id: open.id, output_index: open.index, content_index: 0 };
    return [
      this.#event(open.kind === "message" ? "response.output_text.done" : "response.reasoning_text.done", {
        ...where,
        text: open.text,
        ...(open.kind === "message" ? { logprobs: [] } : {}),
      }),
      this.#event("response.content_part.done", { ...where, part }),
      this.#event("response.output_item.done", { output_index: open.index, item }),
    ];
  }

  #fail(error: CortexError): string[] {
    this.#closed = true;
    const response: ResponsesResponse = {
      ...renderResponseShell(this.#frame, "failed"),
      output: this.#done,
      error: { code: error.status === 429 ? "rate_limit_exceeded" : "server_error", message: error.message },
    };
    return [
      this.#event("error", {
        code: error.code,
        message: error.message,
        param: error.param ?? null,
      }),
      this.#event("response.failed", { response }),
    ];
  }

  #functionItem(
    open: Extract<OpenItem, { kind: "function_call" }>,
    status: "in_progress" | "completed",
  ): OutputItem {
    return {
      type: "function_call",
      id: open.id,
      call_id: open.callId,
      name: open.name,
      arguments: status === "completed" ? open.arguments : "",
      status,
    };
  }

  #event(type: string, body: Record<string, unknown>): string {
    return encodeSseJson(JSON.stringify({ type, sequence_number: this.#sequence++, ...body }), type);
  }
}

function textPart(kind: "message" | "reasoning", text: string) {
  return kind === "message"
    ? { type: "output_text", text, annotations: [], logprobs: [] }
    : { type: "reasoning_text", text };
}
