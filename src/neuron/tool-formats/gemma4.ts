/**
 * Gemma 4's calls: `<|tool_call>call:NAME{key:VALUE,…}<tool_call|>`, where
 * keys are bare and strings sit between `<|"|>` marks. A call starts at its
 * name; its arguments become JSON when the call closes.
 */
import { BufferedParser, scanMarkers } from "./output-parser.ts";

const OPEN = "<|tool_call>";
const CLOSE = "<tool_call|>";
const QUOTE = '<|"|>';

type Mode = "text" | "name" | "body";

export class Gemma4Parser extends BufferedParser {
  #mode: Mode = "text";

  protected step(final: boolean): void {
    for (;;) {
      switch (this.#mode) {
        case "text": {
          const scan = scanMarkers(this.buffer, [OPEN], final);
          this.text(scan.before);
          this.buffer = scan.after;
          if (scan.marker === undefined) return;
          this.#mode = "name";
          continue;
        }
        case "name": {
          const brace = this.buffer.indexOf("{");
          if (brace < 0) {
            if (final) this.buffer = "";
            return;
          }
          this.startCall(this.buffer.slice(0, brace).replace(/^\s*call:/, "").trim());
          this.buffer = this.buffer.slice(brace);
          this.#mode = "body";
          continue;
        }
        case "body": {
          const at = this.buffer.indexOf(CLOSE);
          if (at < 0 && !final) return;
          const body = at < 0 ? this.buffer : this.buffer.slice(0, at);
          this.args(gemmaToJson(body));
          this.endCall();
          this.buffer = at < 0 ? "" : this.buffer.slice(at + CLOSE.length);
          this.#mode = "text";
          continue;
        }
      }
    }
  }
}

/** `{a:<|"|>x<|"|>,b:[1,true]}` → `{"a":"x","b":[1,true]}`; bare words that are no JSON literal become strings. */
export function gemmaToJson(body: string): string {
  let out = "";
  let i = 0;
  while (i < body.length) {
    if (body.startsWith(QUOTE, i)) {
      const end = body.indexOf(QUOTE, i + QUOTE.length);
      const text = end < 0 ? body.slice(i + QUOTE.length) : body.slice(i + QUOTE.length, end);
      out += JSON.stringify(text);
      i = end < 0 ? body.length : end + QUOTE.length;
      continue;
    }
    const ch = body[i]!;
    if ("{}[],:".includes(ch) || /\s/.test(ch)) {
      out += ch;
      i++;
      continue;
    }
    const word = /^[^{}[\],:\s]+/.exec(body.slice(i))![0];
    const isKey = /^\s*:/.test(body.slice(i + word.length));
    const literal = /^(true|false|null|-?\d+(\.\d+)?([eE][-+]?\d+)?)$/.test(word);
    out += isKey || !literal ? JSON.stringify(word) : word;
    i += word.length;
  }
  return out.trim();
}
