/**
 * Canonical stream parts → Anthropic Messages SSE, in the order the official
 * SDKs expect: message_start, then for every content block
 * content_block_start / content_block_delta* / content_block_stop (a ping
 * after the first start), then message_delta (stop_reason, usage) and
 * message_stop; or an `error` event when the upstream fails mid-stream.
 * Every frame carries an `event:` line.
 */
import { CortexError } from "../../core/errors.ts";
import {
  assertNever,
  type CanonicalStreamPart,
  type CanonicalUsage,
  type FinishReason,
} from "../canonical.ts";
import { newId } from "../ids.ts";
import { toAnthropicStopReason } from "../map-anthropic-stop-reason.ts";
import { encodeSseJson } from "../sse/sse-parser.ts";
import { anthropicErrorBody } from "./render-error.ts";
import {
  type AnthropicContentBlock,
  type AnthropicUsage,
  renderAnthropicUsage,
  thinkingSignature,
} from "./render-response.ts";
import { toAnthropicToolId } from "./tool-input.ts";

export interface AnthropicStreamOptions {
  /** The `msg_…` id to use (default: a fresh one). */
  messageId?: string;
  /** The model id to show the client (default: the upstream's). */
  model?: string;
  /** Prompt tokens for message_start, when the gateway knows them up front (the final count comes in message_delta). */
  inputTokens?: number;
  /** The client enabled extended thinking: reasoning streams as `thinking` blocks (dropped otherwise). */
  thinking?: boolean;
}

type OpenBlock =
  | { kind: "text" | "thinking"; index: number }
  | { kind: "tool"; index: number; toolIndex: number };

/** Pure state machine: each `push` returns the SSE frames to write for one part. */
export class AnthropicStreamEncoder {
  readonly #options: AnthropicStreamOptions;
  #started = false;
  #pinged = false;
  #closed = false;
  #nextBlock = 0;
  #open: OpenBlock | undefined;
  #toolBlocks = new Map<number, number>();
  #finish: { reason: FinishReason; stopSequence?: string } | undefined;
  #usage: CanonicalUsage | undefined;
  /** The open thinking block's text, for its signature. */
  #thinking = "";

  constructor(options: AnthropicStreamOptions = {}) {
    this.#options = options;
  }

  push(part: CanonicalStreamPart): string[] {
    if (this.#closed) return [];
    const frames: string[] = [];
    if (!this.#started && part.type !== "message_start" && part.type !== "error") {
      frames.push(...this.#messageStart(""));
    }
    switch (part.type) {
      case "message_start":
        if (!this.#started)
          frames.push(
            ...this.#messageStart(
              part.model,
              part.inputTokens === undefined
                ? undefined
                : renderAnthropicUsage({
                    inputTokens: part.inputTokens,
                    outputTokens: 0,
                    ...(part.cachedInputTokens === undefined
                      ? {}
                      : { cachedInputTokens: part.cachedInputTokens }),
                  }),
            ),
          );
        break;
      case "text_delta":
        if (part.text === "") break;
        if (this.#open?.kind !== "text") frames.push(...this.#startBlock({ type: "text", text: "" }, "text"));
        frames.push(this.#delta({ type: "text_delta", text: part.text }));
        break;
      case "thinking_delta":
        if (part.text === "" || this.#options.thinking !== true) break;
        if (this.#open?.kind !== "thinking") {
          frames.push(...this.#startBlock({ type: "thinking", thinking: "", signature: "" }, "thinking"));
          this.#thinking = "";
        }
        this.#thinking += part.text;
        frames.push(this.#delta({ type: "thinking_delta", thinking: part.text }));
        break;
      case "tool_call_start":
        frames.push(
          ...this.#startBlock(
            { type: "tool_use", id: toAnthropicToolId(part.id), name: part.name, input: {} },
            "tool",
            part.index,
          ),
        );
        break;
      case "tool_call_delta": {
        const index = this.#toolBlocks.get(part.index);
        if (index !== undefined && part.argumentsDelta !== "")
          frames.push(
            this.#frame("content_block_delta", {
              type: "content_block_delta",
              index,
              delta: { type: "input_json_delta", partial_json: part.argumentsDelta },
            }),
          );
        break;
      }
      case "tool_call_end":
        if (this.#open?.kind === "tool" && this.#open.toolIndex === part.index)
          frames.push(...this.#stopBlock());
        break;
      case "finish":
        frames.push(...this.#stopBlock());
        this.#finish = {
          reason: part.reason,
          ...(part.stopSequence ? { stopSequence: part.stopSequence } : {}),
        };
        break;
      case "usage":
        // Usage normally follows finish and completes the message; if it came first, it waits for the end.
        this.#usage = part.usage;
        if (this.#finish) frames.push(...this.#messageEnd());
        break;
      case "error":
        this.#closed = true;
        frames.push(this.#frame("error", anthropicErrorBody(CortexError.fromWire(part.error))));
        break;
      default:
        return assertNever(part, "stream part");
    }
    return frames;
  }

  /** End of the canonical stream: completes the message, or reports that it was cut short. */
  end(): string[] {
    if (this.#closed) return [];
    if (this.#finish) return this.#messageEnd();
    this.#closed = true;
    const error = new CortexError("upstream_error", "the upstream stream ended before the answer finished");
    return [this.#frame("error", anthropicErrorBody(error))];
  }

  #messageStart(model: string, usage?: AnthropicUsage): string[] {
    this.#started = true;
    return [
      this.#frame("message_start", {
        type: "message_start",
        message: {
          id: this.#options.messageId ?? newId("msg_01"),
          type: "message",
          role: "assistant",
          model: this.#options.model ?? model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: usage ?? { input_tokens: this.#options.inputTokens ?? 0, output_tokens: 0 },
        },
      }),
    ];
  }

  #startBlock(block: AnthropicContentBlock, kind: OpenBlock["kind"], toolIndex = 0): string[] {
    const frames = this.#stopBlock();
    const index = this.#nextBlock++;
    this.#open = kind === "tool" ? { kind, index, toolIndex } : { kind, index };
    if (kind === "tool") this.#toolBlocks.set(toolIndex, index);
    frames.push(
      this.#frame("content_block_start", { type: "content_block_start", index, content_block: block }),
    );
    if (!this.#pinged) {
      this.#pinged = true;
      frames.push(this.#frame("ping", { type: "ping" }));
    }
    return frames;
  }

  #stopBlock(): string[] {
    const open = this.#open;
    if (!open) return [];
    this.#open = undefined;
    const stop = this.#frame("content_block_stop", { type: "content_block_stop", index: open.index });
    if (open.kind !== "thinking") return [stop];
    // As Anthropic does: the block's signature comes last, as its own delta.
    const signature = this.#frame("content_block_delta", {
      type: "content_block_delta",
      index: open.index,
      delta: { type: "signature_delta", signature: thinkingSignature(this.#thinking) },
    });
    return [signature, stop];
  }

  #delta(delta: { type: "text_delta"; text: string } | { type: "thinking_delta"; thinking: string }): string {
    return this.#frame("content_block_delta", {
      type: "content_block_delta",
      index: this.#open?.index ?? 0,
      delta,
    });
  }

  #messageEnd(): string[] {
    this.#closed = true;
    const finish = this.#finish ?? { reason: "stop" as const };
    const rendered = this.#usage === undefined ? { output_tokens: 0 } : renderAnthropicUsage(this.#usage);
    return [
      this.#frame("message_delta", {
        type: "message_delta",
        delta: {
          stop_reason: toAnthropicStopReason(finish.reason),
          stop_sequence: finish.reason === "stop_sequence" ? (finish.stopSequence ?? null) : null,
        },
        usage: rendered,
      }),
      this.#frame("message_stop", { type: "message_stop" }),
    ];
  }

  #frame(event: string, data: unknown): string {
    return encodeSseJson(JSON.stringify(data), event);
  }
}
