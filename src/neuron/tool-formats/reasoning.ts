/**
 * Splits a reasoning block off the front of the answer: `<think>…</think>`
 * (Qwen3, DeepSeek-R1, GLM) or Gemma 4's `<|channel>thought…<channel|>`.
 * Templates that open the block themselves (the generation prompt ends with
 * `<think>`) start the output inside it. The rest goes to the answer's
 * parser (tool calls).
 */
import { type OutputParser, type ParsedEvent, scanMarkers } from "./output-parser.ts";

export interface ReasoningMarkers {
  open: string;
  close: string;
}

export const THINK: ReasoningMarkers = { open: "<think>", close: "</think>" };
export const GEMMA4_THOUGHT: ReasoningMarkers = { open: "<|channel>thought", close: "<channel|>" };

type Mode = "start" | "reasoning" | "answer";

export class ReasoningSplitter implements OutputParser {
  readonly #markers: ReasoningMarkers;
  readonly #answer: OutputParser;
  #mode: Mode;
  #buffer = "";
  #leading = true;
  /** After the block: whitespace before the answer is the template's. */
  #trimAnswer = false;

  /** `inside`: the prompt already opened the block. */
  constructor(markers: ReasoningMarkers, answer: OutputParser, inside: boolean) {
    this.#markers = markers;
    this.#answer = answer;
    this.#mode = inside ? "reasoning" : "start";
  }

  push(text: string): ParsedEvent[] {
    this.#buffer += text;
    return this.#step(false);
  }

  end(): ParsedEvent[] {
    return [...this.#step(true), ...this.#answer.end()];
  }

  #step(final: boolean): ParsedEvent[] {
    const events: ParsedEvent[] = [];
    for (;;) {
      switch (this.#mode) {
        case "start": {
          const t = this.#buffer.trimStart();
          const { open } = this.#markers;
          if (t.startsWith(open)) {
            this.#buffer = t.slice(open.length);
            this.#mode = "reasoning";
            continue;
          }
          if (open.startsWith(t) && !final) return events;
          this.#mode = "answer";
          continue;
        }
        case "reasoning": {
          const scan = scanMarkers(this.#buffer, [this.#markers.close], final);
          let text = scan.before;
          if (this.#leading) {
            text = text.trimStart();
            if (text !== "") this.#leading = false;
          }
          // The newline before the closing mark is the template's, not the thought's.
          if (scan.marker !== undefined) text = text.trimEnd();
          else if (!final) {
            const ws = /\s*$/.exec(text)!.index;
            this.#buffer = text.slice(ws) + scan.after;
            text = text.slice(0, ws);
          }
          if (text !== "") events.push({ type: "reasoning", text });
          if (scan.marker === undefined) {
            if (final) this.#buffer = "";
            return events;
          }
          this.#buffer = scan.after;
          this.#trimAnswer = true;
          this.#mode = "answer";
          continue;
        }
        case "answer": {
          let text = this.#buffer;
          this.#buffer = "";
          if (this.#trimAnswer) {
            text = text.trimStart();
            if (text !== "") this.#trimAnswer = false;
          }
          if (text !== "") events.push(...this.#answer.push(text));
          return events;
        }
      }
    }
  }
}
