/**
 * Formats whose calls are JSON objects naming the tool:
 * - Hermes / Qwen 2.5: `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`, anywhere in the answer.
 * - Llama 3.x: the answer is `{"name": …, "parameters": …}` (several separated by `;`),
 *   or a call after `<|python_tag|>`.
 * - Generic (a template that teaches no format): Hermes blocks, or an answer that is one JSON call.
 */
import { JsonCallReader } from "./json-call.ts";
import { BufferedParser, scanMarkers } from "./output-parser.ts";

export interface JsonCallsSyntax {
  /** Marker that opens a call anywhere in the answer. */
  open: string;
  /** Marker that closes a call (optional in the output). */
  close?: string;
  /** A bare JSON object at the very start of the answer is a call. */
  bareAtStart: boolean;
  /** Separator between bare calls. */
  separator?: string;
}

export const HERMES: JsonCallsSyntax = { open: "<tool_call>", close: "</tool_call>", bareAtStart: false };
export const GENERIC: JsonCallsSyntax = { open: "<tool_call>", close: "</tool_call>", bareAtStart: true };
export const LLAMA3: JsonCallsSyntax = { open: "<|python_tag|>", bareAtStart: true, separator: ";" };

type Mode = "start" | "text" | "call" | "close" | "between";

export class JsonCallsParser extends BufferedParser {
  readonly #syntax: JsonCallsSyntax;
  #mode: Mode;
  #reader: JsonCallReader | undefined;
  #opened = "";
  readonly #tools: ReadonlySet<string>;

  /** `tools`: the request's tool names; a bare JSON answer is a call only when it names one. */
  constructor(syntax: JsonCallsSyntax, tools: ReadonlySet<string>) {
    super();
    this.#syntax = syntax;
    this.#tools = tools;
    this.#mode = syntax.bareAtStart ? "start" : "text";
  }

  protected step(final: boolean): void {
    for (;;) {
      switch (this.#mode) {
        case "start": {
          const t = this.buffer.trimStart();
          if (t === "" && !final) return;
          if (t.startsWith("{")) {
            this.buffer = t;
            this.#openCall("");
          } else this.#mode = "text";
          continue;
        }
        case "between": {
          // After a bare call: `; {…}` goes on, anything else is text.
          const t = this.buffer.trimStart();
          const sep = this.#syntax.separator ?? "";
          if (t === "" || (sep !== "" && t === sep.slice(0, t.length) && t.length < sep.length)) {
            if (final) this.buffer = "";
            else return;
          }
          if (sep !== "" && t.startsWith(sep)) {
            const after = t.slice(sep.length).trimStart();
            if (after === "" && !final) return;
            if (after.startsWith("{")) {
              this.buffer = after;
              this.#openCall("");
              continue;
            }
          }
          this.#mode = "text";
          continue;
        }
        case "text": {
          const scan = scanMarkers(this.buffer, [this.#syntax.open], final);
          this.text(scan.before);
          this.buffer = scan.after;
          if (scan.marker === undefined) return;
          this.#openCall(scan.marker);
          continue;
        }
        case "call": {
          const reader = this.#reader!;
          const result = reader.read(this.buffer);
          for (const event of result.events) {
            if (event.type === "call_start") this.startCall(event.name);
            else this.args(event.args);
          }
          this.buffer = result.rest;
          if (result.status === "more") {
            if (final) this.#giveBack(reader);
            return;
          }
          if (result.status === "fail") {
            this.#giveBack(reader);
            continue;
          }
          this.endCall();
          this.#mode = this.#opened === "" && this.#syntax.separator ? "between" : "close";
          continue;
        }
        case "close": {
          const close = this.#syntax.close;
          const t = this.buffer.trimStart();
          if (close === undefined) {
            this.#mode = "text";
            continue;
          }
          if (t.startsWith(close)) {
            this.buffer = t.slice(close.length);
            this.#mode = "text";
            continue;
          }
          if (t.length < close.length && close.startsWith(t) && !final) return;
          this.#mode = "text";
          continue;
        }
      }
      return;
    }
  }

  #openCall(marker: string): void {
    this.#opened = marker;
    this.#reader = new JsonCallReader(marker === "" ? (name) => this.#tools.has(name) : undefined);
    this.#mode = "call";
  }

  /** Not a call after all: a started call ends as generated, anything else is text again. */
  #giveBack(reader: JsonCallReader): void {
    if (reader.started) this.endCall();
    else this.text(this.#opened + reader.raw);
    this.#mode = "text";
  }
}
