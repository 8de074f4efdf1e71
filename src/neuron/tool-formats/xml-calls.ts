/**
 * Formats that write each parameter as its own element:
 * - Qwen3-Coder: `<tool_call>\n<function=NAME>\n<parameter=KEY>\nVALUE\n</parameter>\n</function>\n</tool_call>`
 * - GLM 4.5+: `<tool_call>NAME\n<arg_key>KEY</arg_key>\n<arg_value>VALUE</arg_value>\n</tool_call>`
 * The call starts once its name is read; each parameter becomes a member of
 * the JSON arguments when its value ends.
 */
import { BufferedParser, scanMarkers } from "./output-parser.ts";
import { ArgsBuilder, type StringParams } from "./tool-schemas.ts";

interface XmlSyntax {
  /** Markers that open a call in the answer. */
  open: string[];
  /** Reads the name after the opening: the name, and what follows it, or undefined until it is known. */
  name(buffer: string, final: boolean): { name: string; rest: string } | undefined | "fail";
  keyOpen: string;
  /** Ends the key (Qwen3-Coder: `>`). */
  keyClose: string;
  /** Between the key and its value (GLM: `<arg_value>`). */
  valueOpen: string;
  valueClose: string;
  /** Ends the call. */
  callClose: string[];
  /** Qwen3-Coder writes the value between newlines. */
  trimValue: boolean;
}

export const QWEN3_CODER: XmlSyntax = {
  open: ["<tool_call>", "<function="],
  name(buffer, final) {
    let t = buffer;
    if (!t.startsWith("<function=")) {
      t = t.trimStart();
      if (t.length < "<function=".length && "<function=".startsWith(t) && !final) return undefined;
      if (!t.startsWith("<function=")) return "fail";
      t = t.slice("<function=".length);
    } else t = t.slice("<function=".length);
    const end = t.indexOf(">");
    if (end < 0) return final ? "fail" : undefined;
    return { name: t.slice(0, end).trim(), rest: t.slice(end + 1) };
  },
  keyOpen: "<parameter=",
  keyClose: ">",
  valueOpen: "",
  valueClose: "</parameter>",
  callClose: ["</function>", "</tool_call>"],
  trimValue: true,
};

export const GLM: XmlSyntax = {
  open: ["<tool_call>"],
  name(buffer, final) {
    const m = /^([^<\n]*?)\s*(?=<arg_key>|<\/tool_call>|\n)/.exec(buffer);
    if (m === null) return final ? { name: buffer.trim(), rest: "" } : undefined;
    const name = m[1]!.trim();
    return name === "" ? "fail" : { name, rest: buffer.slice(m[0].length) };
  },
  keyOpen: "<arg_key>",
  keyClose: "</arg_key>",
  valueOpen: "<arg_value>",
  valueClose: "</arg_value>",
  callClose: ["</tool_call>"],
  trimValue: false,
};

type Mode = "text" | "name" | "members" | "key" | "value-open" | "value" | "after-call";

export class XmlCallsParser extends BufferedParser {
  readonly #syntax: XmlSyntax;
  readonly #schemas: StringParams;
  #mode: Mode = "text";
  #opened = "";
  #args: ArgsBuilder | undefined;
  #key = "";

  constructor(syntax: XmlSyntax, schemas: StringParams) {
    super();
    this.#syntax = syntax;
    this.#schemas = schemas;
  }

  protected step(final: boolean): void {
    const s = this.#syntax;
    for (;;) {
      switch (this.#mode) {
        case "text": {
          const scan = scanMarkers(this.buffer, s.open, final);
          this.text(scan.before);
          this.buffer = scan.after;
          if (scan.marker === undefined) return;
          // `<function=` without `<tool_call>`: the marker is part of the call.
          if (scan.marker === "<function=") this.buffer = scan.marker + this.buffer;
          this.#opened = scan.marker;
          this.#mode = "name";
          continue;
        }
        case "name": {
          const read = s.name(this.buffer, final);
          if (read === undefined) return;
          if (read === "fail") {
            this.text(this.#opened === "<function=" ? "" : this.#opened);
            this.#mode = "text";
            continue;
          }
          this.startCall(read.name);
          this.#args = new ArgsBuilder(this.#schemas, read.name);
          this.buffer = read.rest;
          this.#mode = "members";
          continue;
        }
        case "members": {
          const t = this.buffer.trimStart();
          const next = [s.keyOpen, ...s.callClose].find((m) => t.startsWith(m));
          if (next === undefined) {
            const partial = [s.keyOpen, ...s.callClose].some((m) => m.startsWith(t));
            if (partial && !final) return;
            if (final) {
              this.#closeCall();
              this.buffer = "";
              return;
            }
            // Stray text inside a call: skip it up to the next element.
            const lt = t.indexOf("<", 1);
            this.buffer = lt < 0 ? "" : t.slice(lt);
            if (lt < 0) return;
            continue;
          }
          this.buffer = t.slice(next.length);
          if (next === s.keyOpen) {
            this.#mode = "key";
            continue;
          }
          this.#closeCall();
          this.#mode = "after-call";
          continue;
        }
        case "key": {
          const end = this.buffer.indexOf(s.keyClose);
          if (end < 0) {
            if (final) this.#closeCall();
            return;
          }
          this.#key = this.buffer.slice(0, end).trim();
          this.buffer = this.buffer.slice(end + s.keyClose.length);
          this.#mode = s.valueOpen === "" ? "value" : "value-open";
          continue;
        }
        case "value-open": {
          const t = this.buffer.trimStart();
          if (t.startsWith(s.valueOpen)) {
            this.buffer = t.slice(s.valueOpen.length);
            this.#mode = "value";
            continue;
          }
          if (s.valueOpen.startsWith(t) && !final) return;
          this.#mode = "members";
          continue;
        }
        case "value": {
          const end = this.buffer.indexOf(s.valueClose);
          if (end < 0 && !final) return;
          let value = end < 0 ? this.buffer : this.buffer.slice(0, end);
          if (s.trimValue) value = value.replace(/^\n/, "").replace(/\n$/, "");
          this.args(this.#args!.member(this.#key, value));
          this.buffer = end < 0 ? "" : this.buffer.slice(end + s.valueClose.length);
          this.#mode = "members";
          continue;
        }
        case "after-call": {
          // Qwen3-Coder closes </function> then </tool_call>.
          const t = this.buffer.trimStart();
          const close = s.callClose.find((m) => t.startsWith(m));
          if (close !== undefined) {
            this.buffer = t.slice(close.length);
            continue;
          }
          if (s.callClose.some((m) => m.startsWith(t)) && t !== "" && !final) return;
          if (t === "" && !final) return;
          this.#mode = "text";
          continue;
        }
      }
    }
  }

  #closeCall(): void {
    if (this.#args === undefined) return;
    this.args(this.#args.close());
    this.#args = undefined;
    this.endCall();
  }
}
