/**
 * Canonical stream parts → OpenAI `chat.completion.chunk` SSE frames, ending
 * in `data: [DONE]` (or in an error envelope, without [DONE], when the
 * upstream failed mid-stream).
 */
import { CortexError } from "../../core/errors.ts";
import { assertNever, type CanonicalStreamPart } from "../canonical.ts";
import { newId } from "../ids.ts";
import { toOpenAIFinishReason } from "../map-openai-finish-reason.ts";
import { encodeSseJson } from "../sse/sse-parser.ts";
import { openAIErrorBody } from "./render-error.ts";
import { type OpenAIUsage, renderOpenAIUsage } from "./render-response.ts";

export interface OpenAIChunkDelta {
  role?: "assistant";
  content?: string;
  reasoning_content?: string;
  tool_calls?: Array<{
    index: number;
    id?: string;
    type?: "function";
    function: { name?: string; arguments: string };
  }>;
}

export interface OpenAIChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: OpenAIChunkDelta;
    logprobs: null;
    finish_reason: "stop" | "length" | "tool_calls" | null;
    stop_sequence?: string;
  }>;
  usage?: OpenAIUsage | null;
}

export interface OpenAIStreamOptions {
  /** Send the final usage chunk (`stream_options.include_usage`). */
  includeUsage: boolean;
  /** The model id to show the client (default: the upstream's). */
  model?: string;
  /** Add the matched stop sequence to the finishing choice (the neuron's extension, see NeuronChoiceExtensions). */
  reportStopSequence?: boolean;
  /**
   * Put a message_start's `inputTokens` and `cachedInputTokens` on the first
   * chunk as `cortex_prompt_tokens` and `cortex_cached_tokens` (the neuron's extension).
   */
  reportPromptTokens?: boolean;
}

/** Pure state machine: each `push` returns the SSE text to write for one part. */
export class OpenAIStreamEncoder {
  readonly #options: OpenAIStreamOptions;
  #id = "";
  #model = "";
  #created = 0;
  #started = false;
  #closed = false;
  #framing: { prefix: string; suffix: string } | undefined;

  constructor(options: OpenAIStreamOptions) {
    this.#options = options;
  }

  push(part: CanonicalStreamPart): string[] {
    if (this.#closed) return [];
    const frames: string[] = [];
    if (!this.#started && part.type !== "message_start" && part.type !== "error") {
      frames.push(
        ...this.push({ type: "message_start", id: newId("chatcmpl-"), model: "", created: nowS() }),
      );
    }
    switch (part.type) {
      case "message_start":
        if (this.#started) break;
        this.#started = true;
        this.#id = part.id;
        this.#model = this.#options.model ?? part.model;
        this.#created = part.created;
        if (this.#options.reportPromptTokens && part.inputTokens !== undefined) {
          // `],"usage":null}` or `]}` after the choices: the extension goes between.
          const framing = this.#framingFor();
          const cached =
            part.cachedInputTokens === undefined ? "" : `,"cortex_cached_tokens":${part.cachedInputTokens}`;
          frames.push(
            `${framing.prefix}${ROLE_CHOICE}],"cortex_prompt_tokens":${part.inputTokens}${cached}${framing.suffix.slice(1)}`,
          );
        } else frames.push(this.#frame(ROLE_CHOICE));
        break;
      case "text_delta":
        // The token path: only the text is serialised (same bytes as the whole choice).
        if (part.text !== "")
          frames.push(this.#frame(`${TEXT_CHOICE_HEAD}${JSON.stringify(part.text)}${TEXT_CHOICE_TAIL}`));
        break;
      case "thinking_delta":
        if (part.text !== "") frames.push(this.#chunk({ reasoning_content: part.text }, null));
        break;
      case "tool_call_start":
        frames.push(
          this.#chunk(
            {
              tool_calls: [
                {
                  index: part.index,
                  id: part.id,
                  type: "function",
                  function: { name: part.name, arguments: "" },
                },
              ],
            },
            null,
          ),
        );
        break;
      case "tool_call_delta":
        if (part.argumentsDelta !== "")
          frames.push(
            this.#chunk(
              { tool_calls: [{ index: part.index, function: { arguments: part.argumentsDelta } }] },
              null,
            ),
          );
        break;
      case "tool_call_end":
        break;
      case "finish":
        if (this.#options.reportStopSequence && part.stopSequence !== undefined)
          frames.push(this.#chunk({}, toOpenAIFinishReason(part.reason), part.stopSequence));
        // The reason is one of a few plain words: no escaping to do.
        else frames.push(this.#frame(`${FINISH_CHOICE_HEAD}"${toOpenAIFinishReason(part.reason)}"}`));
        break;
      case "usage":
        if (this.#options.includeUsage)
          // `{…envelope, choices: [], usage}`: the framing's prefix ends at `"choices":[`.
          frames.push(
            `${this.#framingFor().prefix}],"usage":${JSON.stringify(renderOpenAIUsage(part.usage))}}\n\n`,
          );
        break;
      case "error":
        this.#closed = true;
        frames.push(openAIErrorEvent(CortexError.fromWire(part.error)));
        break;
      default:
        return assertNever(part, "stream part");
    }
    return frames;
  }

  end(): string[] {
    if (this.#closed) return [];
    this.#closed = true;
    return [DONE_FRAME];
  }

  #envelope(): Omit<OpenAIChatCompletionChunk, "choices"> {
    return { id: this.#id, object: "chat.completion.chunk", created: this.#created, model: this.#model };
  }

  #chunk(
    delta: OpenAIChunkDelta,
    finishReason: OpenAIChatCompletionChunk["choices"][number]["finish_reason"],
    stopSequence?: string,
  ): string {
    const choice: OpenAIChatCompletionChunk["choices"][number] = {
      index: 0,
      delta,
      logprobs: null,
      finish_reason: finishReason,
      ...(stopSequence === undefined ? {} : { stop_sequence: stopSequence }),
    };
    return this.#frame(JSON.stringify(choice));
  }

  /** The chunk holding one serialised choice, as its SSE frame. */
  #frame(choiceJson: string): string {
    const framing = this.#framingFor();
    return `${framing.prefix}${choiceJson}${framing.suffix}`;
  }

  /** The same bytes JSON.stringify gives around the choices; the envelope is serialised once per stream. */
  #framingFor(): { prefix: string; suffix: string } {
    this.#framing ??= {
      prefix: `data: ${JSON.stringify(this.#envelope()).slice(0, -1)},"choices":[`,
      suffix: this.#options.includeUsage ? '],"usage":null}\n\n' : "]}\n\n",
    };
    return this.#framing;
  }
}

/** An error as the SSE event that ends an OpenAI stream (no `[DONE]` follows it). */
export function openAIErrorEvent(error: CortexError): string {
  return encodeSseJson(JSON.stringify(openAIErrorBody(error)));
}

const DONE_FRAME = "data: [DONE]\n\n";
// `{index: 0, delta: {content: text}, logprobs: null, finish_reason: null}` around the text's JSON.
const TEXT_CHOICE_HEAD = '{"index":0,"delta":{"content":';
const TEXT_CHOICE_TAIL = '},"logprobs":null,"finish_reason":null}';
// The first chunk's choice: `{index: 0, delta: {role: "assistant", content: ""}, logprobs: null, finish_reason: null}`.
const ROLE_CHOICE =
  '{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}';
// The finishing choice without a stop sequence, up to the reason: `{index: 0, delta: {}, logprobs: null, finish_reason: …}`.
const FINISH_CHOICE_HEAD = '{"index":0,"delta":{},"logprobs":null,"finish_reason":';

function nowS(): number {
  return Math.floor(Date.now() / 1000);
}

/** Canonical parts in, OpenAI SSE text out (encode to bytes with TextEncoderStream). */
export function createOpenAIStreamEncoder(
  options: OpenAIStreamOptions,
): TransformStream<CanonicalStreamPart, string> {
  const encoder = new OpenAIStreamEncoder(options);
  return new TransformStream({
    transform(part, controller) {
      for (const frame of encoder.push(part)) controller.enqueue(frame);
    },
    flush(controller) {
      for (const frame of encoder.end()) controller.enqueue(frame);
    },
  });
}
