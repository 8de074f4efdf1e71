/**
 * Formats that mark a call's name and arguments with special tokens, the
 * arguments being JSON streamed as generated:
 * - DeepSeek V3/R1: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>…<｜tool▁calls▁end｜>`,
 *   and V3.1's `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>`.
 * - Mistral: `[TOOL_CALLS]NAME[ARGS]ARGS` (with `[CALL_ID]ID` before `[ARGS]` in some
 *   templates), or the older `[TOOL_CALLS][{"name": …, "arguments": …, "id": …}, …]`.
 */
import { JsonCallReader } from "./json-call.ts";
import { JsonValueScanner } from "./json-value.ts";
import { BufferedParser, scanMarkers } from "./output-parser.ts";

export const DS = {
  callsBegin: "<｜tool▁calls▁begin｜>",
  callsEnd: "<｜tool▁calls▁end｜>",
  callBegin: "<｜tool▁call▁begin｜>",
  callEnd: "<｜tool▁call▁end｜>",
  sep: "<｜tool▁sep｜>",
} as const;

/**
 * Streams one JSON value as argument deltas, less the whitespace before the
 * value (models write a space or newline after the marker); `done` once the
 * value ended, `rest` then holds what follows.
 */
class ArgsStream {
  readonly #scanner = new JsonValueScanner();
  #started = false;

  feed(text: string): { delta: string; done: boolean; rest: string } {
    for (let i = 0; i < text.length; i++) {
      const step = this.#scanner.feed(text[i]!);
      if (step === "error" || step === "done-before")
        return { delta: this.#lead(text.slice(0, i)), done: true, rest: text.slice(i) };
      if (step === "done")
        return { delta: this.#lead(text.slice(0, i + 1)), done: true, rest: text.slice(i + 1) };
    }
    return { delta: this.#lead(text), done: false, rest: "" };
  }

  #lead(delta: string): string {
    if (this.#started) return delta;
    const trimmed = delta.trimStart();
    if (trimmed !== "") this.#started = true;
    return trimmed;
  }
}

type DsMode = "text" | "calls" | "head" | "fence" | "args" | "tail";

export class DeepSeekParser extends BufferedParser {
  #mode: DsMode = "text";
  #args: ArgsStream | undefined;

  protected step(final: boolean): void {
    for (;;) {
      switch (this.#mode) {
        case "text": {
          const scan = scanMarkers(this.buffer, [DS.callsBegin, DS.callBegin], final);
          this.text(scan.before);
          this.buffer = scan.after;
          if (scan.marker === undefined) return;
          this.#mode = scan.marker === DS.callBegin ? "head" : "calls";
          continue;
        }
        case "calls": {
          const t = this.buffer.trimStart();
          if (t.startsWith(DS.callBegin)) {
            this.buffer = t.slice(DS.callBegin.length);
            this.#mode = "head";
            continue;
          }
          if (t.startsWith(DS.callsEnd)) {
            this.buffer = t.slice(DS.callsEnd.length);
            this.#mode = "text";
            continue;
          }
          if ((t === "" || DS.callBegin.startsWith(t) || DS.callsEnd.startsWith(t)) && !final) return;
          this.buffer = t;
          this.#mode = "text";
          continue;
        }
        case "head": {
          const sep = this.buffer.indexOf(DS.sep);
          if (sep < 0) {
            if (final) this.buffer = "";
            return;
          }
          const before = this.buffer.slice(0, sep).trim();
          const after = this.buffer.slice(sep + DS.sep.length);
          if (before === "function") {
            // R1: the name ends at the newline, then a ```json fence.
            const nl = after.indexOf("\n");
            if (nl < 0) {
              if (final) {
                this.startCall(after.trim());
                this.buffer = "";
              }
              return;
            }
            this.startCall(after.slice(0, nl).trim());
            this.buffer = after.slice(nl + 1);
            this.#mode = "fence";
          } else {
            this.startCall(before);
            this.buffer = after;
            this.#beginArgs();
          }
          continue;
        }
        case "fence": {
          const t = this.buffer.trimStart();
          if (t.startsWith("```json")) {
            this.buffer = t.slice("```json".length);
            this.#beginArgs();
            continue;
          }
          if ("```json".startsWith(t) && !final) return;
          this.buffer = t;
          this.#beginArgs();
          continue;
        }
        case "args": {
          const fed = this.#args!.feed(this.buffer);
          this.args(fed.delta);
          this.buffer = fed.rest;
          if (!fed.done) {
            if (final) this.endCall();
            return;
          }
          this.#mode = "tail";
          continue;
        }
        case "tail": {
          // After the arguments: an optional closing fence, then <｜tool▁call▁end｜>.
          const at = this.buffer.indexOf(DS.callEnd);
          if (at < 0) {
            if (final) this.endCall();
            return;
          }
          this.endCall();
          this.buffer = this.buffer.slice(at + DS.callEnd.length);
          this.#mode = "calls";
          continue;
        }
      }
    }
  }

  #beginArgs(): void {
    this.#args = new ArgsStream();
    this.#mode = "args";
  }
}

const M = { calls: "[TOOL_CALLS]", args: "[ARGS]", id: "[CALL_ID]" } as const;

type MistralMode = "text" | "after" | "name" | "args" | "array" | "array-call";

export class MistralParser extends BufferedParser {
  #mode: MistralMode = "text";
  #args: ArgsStream | undefined;
  #reader: JsonCallReader | undefined;

  protected step(final: boolean): void {
    for (;;) {
      switch (this.#mode) {
        case "text": {
          const scan = scanMarkers(this.buffer, [M.calls], final);
          this.text(scan.before);
          this.buffer = scan.after;
          if (scan.marker === undefined) return;
          this.#mode = "after";
          continue;
        }
        case "after": {
          const t = this.buffer.trimStart();
          if (t === "" && !final) return;
          if (t.startsWith("[")) {
            this.buffer = t.slice(1);
            this.#mode = "array";
          } else this.#mode = "name";
          continue;
        }
        case "name": {
          const scan = scanMarkers(this.buffer, [M.args, M.id], final);
          if (scan.marker === undefined) {
            if (final) this.text(this.buffer);
            if (final) this.buffer = "";
            return;
          }
          if (scan.marker === M.id) {
            // [CALL_ID]id[ARGS]: the id is ours to give, the one written is dropped.
            const at = scan.after.indexOf(M.args);
            if (at < 0) {
              if (final) this.buffer = "";
              return;
            }
            this.startCall(scan.before.trim());
            this.buffer = scan.after.slice(at + M.args.length);
          } else {
            this.startCall(scan.before.trim());
            this.buffer = scan.after;
          }
          this.#args = new ArgsStream();
          this.#mode = "args";
          continue;
        }
        case "args": {
          const fed = this.#args!.feed(this.buffer);
          this.args(fed.delta);
          this.buffer = fed.rest;
          if (!fed.done) {
            if (final) this.endCall();
            return;
          }
          this.endCall();
          this.#mode = "text";
          continue;
        }
        case "array": {
          const t = this.buffer.replace(/^[\s,]+/, "");
          if (t.startsWith("]")) {
            this.buffer = t.slice(1);
            this.#mode = "text";
            continue;
          }
          if (t === "") {
            this.buffer = "";
            return;
          }
          this.buffer = t;
          this.#reader = new JsonCallReader();
          this.#mode = "array-call";
          continue;
        }
        case "array-call": {
          const result = this.#reader!.read(this.buffer);
          for (const event of result.events) {
            if (event.type === "call_start") this.startCall(event.name);
            else this.args(event.args);
          }
          this.buffer = result.rest;
          if (result.status === "more") {
            if (final) this.endCall();
            return;
          }
          this.endCall();
          this.#mode = result.status === "done" ? "array" : "text";
          continue;
        }
      }
    }
  }
}
