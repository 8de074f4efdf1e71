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
  #args = new GemmaArgs();

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
          this.startCall(
            this.buffer
              .slice(0, brace)
              .replace(/^\s*call:/, "")
              .trim(),
          );
          this.buffer = this.buffer.slice(brace);
          this.#args = new GemmaArgs();
          this.#mode = "body";
          continue;
        }
        case "body": {
          const scan = scanMarkers(this.buffer, [CLOSE], final);
          this.args(this.#args.feed(scan.before, scan.marker !== undefined || final));
          this.buffer = scan.after;
          if (scan.marker === undefined && !final) return;
          this.endCall();
          this.#mode = "text";
          if (scan.marker === undefined) return;
          continue;
        }
      }
    }
  }
}

/**
 * Gemma's notation → JSON, piece by piece: `<|"|>` marks become quotes
 * (the text between them escaped), bare keys are quoted, bare values that
 * are no JSON literal become strings.
 */
class GemmaArgs {
  #held = "";
  #inString = false;
  #word = "";
  readonly #stack: Array<"object" | "array"> = [];
  #expectKey = false;

  feed(text: string, final: boolean): string {
    let buffer = this.#held + text;
    this.#held = "";
    let out = "";
    while (buffer !== "") {
      if (this.#inString) {
        const end = buffer.indexOf(QUOTE);
        if (end >= 0) {
          out += `${JSON.stringify(buffer.slice(0, end)).slice(1, -1)}"`;
          buffer = buffer.slice(end + QUOTE.length);
          this.#inString = false;
          continue;
        }
        const keep = final ? 0 : partialSuffix(buffer, QUOTE);
        out += JSON.stringify(buffer.slice(0, buffer.length - keep)).slice(1, -1);
        this.#held = buffer.slice(buffer.length - keep);
        return out;
      }
      if (buffer.startsWith(QUOTE)) {
        out += this.#flush();
        out += '"';
        this.#inString = true;
        buffer = buffer.slice(QUOTE.length);
        continue;
      }
      if (!final && QUOTE.startsWith(buffer)) {
        this.#held = buffer;
        return out;
      }
      const ch = buffer[0]!;
      buffer = buffer.slice(1);
      if (ch === "{" || ch === "[") {
        out += this.#flush() + ch;
        this.#stack.push(ch === "{" ? "object" : "array");
        this.#expectKey = ch === "{";
      } else if (ch === "}" || ch === "]") {
        out += this.#flush() + ch;
        this.#stack.pop();
        this.#expectKey = false;
      } else if (ch === ",") {
        out += this.#flush() + ch;
        this.#expectKey = this.#stack.at(-1) === "object";
      } else if (ch === ":") {
        out += this.#flush() + ch;
        this.#expectKey = false;
      } else if (/\s/.test(ch)) out += this.#flush() + ch;
      else this.#word += ch;
    }
    if (final) out += this.#flush();
    return out;
  }

  #flush(): string {
    const word = this.#word;
    if (word === "") return "";
    this.#word = "";
    if (this.#expectKey) return JSON.stringify(word);
    return /^(true|false|null|-?\d+(\.\d+)?([eE][-+]?\d+)?)$/.test(word) ? word : JSON.stringify(word);
  }
}

function partialSuffix(text: string, marker: string): number {
  for (let n = Math.min(marker.length - 1, text.length); n > 0; n--)
    if (marker.startsWith(text.slice(text.length - n))) return n;
  return 0;
}

/** `{a:<|"|>x<|"|>,b:[1,true]}` → `{"a":"x","b":[1,true]}`. */
export function gemmaToJson(body: string): string {
  return new GemmaArgs().feed(body, true).trim();
}
