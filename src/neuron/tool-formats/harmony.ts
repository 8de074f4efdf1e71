/**
 * gpt-oss's Harmony format: the answer is a series of messages, each a
 * header and a body, `<|channel|>analysis<|message|>…<|end|>`,
 * `<|start|>assistant<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>ARGS`
 * (then `<|call|>`, which ends generation) and
 * `<|start|>assistant<|channel|>final<|message|>…`. The analysis channel is
 * reasoning, a message to `functions.NAME` is a call, the rest is the answer.
 * The recipient may also sit before the channel (`assistant to=functions.NAME<|channel|>commentary json`).
 */
import { BufferedParser, scanMarkers } from "./output-parser.ts";

const MESSAGE = "<|message|>";
const BODY_ENDS = ["<|end|>", "<|call|>", "<|return|>", "<|start|>"];

type Body = "reasoning" | "text" | "call";
type Mode = "header" | "body";

export class HarmonyParser extends BufferedParser {
  #mode: Mode = "header";
  #body: Body = "text";

  protected step(final: boolean): void {
    for (;;) {
      if (this.#mode === "header") {
        const t = this.buffer.trimStart();
        if (t === "") return;
        const header = ["<|", "to="].some((h) => t.startsWith(h) || (h.startsWith(t) && !final));
        if (!header) {
          // A model that answers without a header: the text is the answer.
          this.#body = "text";
          this.#mode = "body";
          continue;
        }
        const at = t.indexOf(MESSAGE);
        if (at < 0) {
          if (final) this.buffer = "";
          return;
        }
        this.#open(t.slice(0, at));
        this.buffer = t.slice(at + MESSAGE.length);
        this.#mode = "body";
        continue;
      }
      const scan = scanMarkers(this.buffer, BODY_ENDS, final);
      if (this.#body === "reasoning") this.reasoning(scan.before);
      else if (this.#body === "call") this.args(scan.before);
      else this.text(scan.before);
      this.buffer = scan.marker === "<|start|>" ? scan.marker + scan.after : scan.after;
      if (scan.marker === undefined) return;
      if (this.#body === "call") this.endCall();
      this.#mode = "header";
    }
  }

  #open(header: string): void {
    const channel = /<\|channel\|>\s*([A-Za-z]+)/.exec(header)?.[1];
    const recipient = /\bto=([^\s<]+)/.exec(header)?.[1];
    if (recipient?.startsWith("functions.")) {
      this.startCall(recipient.slice("functions.".length));
      this.#body = "call";
    } else if (channel === "analysis") this.#body = "reasoning";
    else this.#body = "text";
  }
}
