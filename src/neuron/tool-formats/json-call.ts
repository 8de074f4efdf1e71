/**
 * Reads one call written as a JSON object, `{"name": …, "arguments": …}`
 * (or `parameters`, or wrapped as `{"type": "function", "function": {…}}`),
 * piece by piece. Once the name is known the arguments stream as they are
 * generated; arguments seen before the name wait for it. Arguments written as
 * a JSON string are decoded into their text when the string ends.
 */
import { JsonValueScanner, parseJson } from "./json-value.ts";

export type CallEvent = { type: "call_start"; name: string } | { type: "call_delta"; args: string };

export interface ReadResult {
  events: CallEvent[];
  /** "more": the object goes on; "done": it ended (`rest` follows it); "fail": not a call. */
  status: "more" | "done" | "fail";
  rest: string;
}

const NAME_KEYS = new Set(["name"]);
const ARGS_KEYS = new Set(["arguments", "parameters"]);

type State = "open" | "key-or-end" | "key" | "colon" | "value" | "after";

export class JsonCallReader {
  /** Everything consumed, for a caller that must give back a failed call as text. */
  raw = "";
  #state: State = "open";
  #key = "";
  #keyEscape = false;
  #value: JsonValueScanner | undefined;
  #valueText = "";
  #nest = 0;
  #name: string | undefined;
  #started = false;
  #argsSeen = false;
  /** Arguments generated before the name, or a string value being collected. */
  #pendingArgs = "";
  readonly #accept: (name: string) => boolean;

  /** `accept`: which names make a call (a bare JSON answer must name a real tool to be one). */
  constructor(accept: (name: string) => boolean = () => true) {
    this.#accept = accept;
  }

  get started(): boolean {
    return this.#started;
  }

  read(text: string): ReadResult {
    const events: CallEvent[] = [];
    let delta = "";
    const flushDelta = () => {
      if (delta !== "") events.push({ type: "call_delta", args: delta });
      delta = "";
    };
    const start = () => {
      if (this.#started || this.#name === undefined) return;
      this.#started = true;
      events.push({ type: "call_start", name: this.#name });
      if (this.#pendingArgs !== "" && !this.#value?.isString) {
        delta += this.#pendingArgs;
        this.#pendingArgs = "";
      }
    };
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      this.raw += ch;
      switch (this.#state) {
        case "open":
          if (/\s/.test(ch)) continue;
          if (ch !== "{") return this.#fail(events, text.slice(i + 1));
          this.#state = "key-or-end";
          continue;
        case "key-or-end":
          if (/\s/.test(ch) || ch === ",") continue;
          if (ch === '"') {
            this.#state = "key";
            this.#key = "";
            continue;
          }
          if (ch === "}") {
            if (this.#closeObject(events)) {
              flushDelta();
              return this.#done(events, text.slice(i + 1));
            }
            continue;
          }
          return this.#fail(events, text.slice(i + 1));
        case "key":
          if (this.#keyEscape) this.#keyEscape = false;
          else if (ch === "\\") this.#keyEscape = true;
          else if (ch === '"') {
            this.#key = (parseJson(`"${this.#key}"`) as string | undefined) ?? this.#key;
            this.#state = "colon";
            continue;
          }
          this.#key += ch;
          continue;
        case "colon":
          if (/\s/.test(ch)) continue;
          if (ch !== ":") return this.#fail(events, text.slice(i + 1));
          this.#state = "value";
          this.#value = new JsonValueScanner();
          this.#valueText = "";
          continue;
        case "value": {
          const scanner = this.#value!;
          const wasStarted = scanner.started;
          if (!wasStarted && ch === "{" && this.#key === "function") {
            // {"type": "function", "function": {"name": …, "arguments": …}}
            this.#nest++;
            this.#state = "key-or-end";
            continue;
          }
          const step = scanner.feed(ch);
          if (step === "error") return this.#fail(events, text.slice(i + 1));
          const isArgs = ARGS_KEYS.has(this.#key);
          if (step === "done-before") {
            this.raw = this.raw.slice(0, -1);
            this.#endValue(events);
            this.#state = "after";
            i--;
            continue;
          }
          if (!scanner.started) continue; // leading whitespace
          if (isArgs && !scanner.isString) {
            if (!this.#argsSeen) this.#argsSeen = true;
            if (this.#started) delta += ch;
            else this.#pendingArgs += ch;
          } else this.#valueText += ch;
          if (step === "done") {
            flushDelta();
            this.#endValue(events);
            start();
            flushDelta();
            this.#state = "after";
          }
          continue;
        }
        case "after":
          if (/\s/.test(ch)) continue;
          if (ch === ",") {
            this.#state = "key-or-end";
            continue;
          }
          if (ch === "}") {
            if (this.#closeObject(events)) {
              flushDelta();
              return this.#done(events, text.slice(i + 1));
            }
            continue;
          }
          return this.#fail(events, text.slice(i + 1));
      }
    }
    flushDelta();
    return { events, status: "more", rest: "" };
  }

  /** A value ended: a name is kept, string arguments decoded. */
  #endValue(events: CallEvent[]): void {
    if (NAME_KEYS.has(this.#key) && this.#name === undefined) {
      const name = parseJson(this.#valueText);
      if (typeof name === "string" && name !== "" && this.#accept(name)) this.#name = name;
      if (this.#name !== undefined && this.#pendingArgs !== "" && !this.#started) {
        this.#started = true;
        events.push({ type: "call_start", name: this.#name });
        events.push({ type: "call_delta", args: this.#pendingArgs });
        this.#pendingArgs = "";
      }
    } else if (ARGS_KEYS.has(this.#key)) {
      this.#argsSeen = true;
      if (this.#value?.isString) {
        const decoded = parseJson(this.#valueText);
        this.#pendingArgs = typeof decoded === "string" ? decoded : this.#valueText;
        if (this.#name !== undefined && !this.#started) {
          this.#started = true;
          events.push({ type: "call_start", name: this.#name });
        }
        if (this.#started) {
          events.push({ type: "call_delta", args: this.#pendingArgs });
          this.#pendingArgs = "";
        }
      }
    }
  }

  /** A `}` at the call's level: true when the whole object ended. */
  #closeObject(_events: CallEvent[]): boolean {
    if (this.#nest > 0) {
      this.#nest--;
      this.#state = "after";
      return false;
    }
    return true;
  }

  #done(events: CallEvent[], rest: string): ReadResult {
    if (this.#name === undefined) return { events, status: "fail", rest };
    if (!this.#started) {
      this.#started = true;
      events.push({ type: "call_start", name: this.#name });
      events.push({ type: "call_delta", args: this.#argsSeen ? this.#pendingArgs : "{}" });
    } else if (!this.#argsSeen) events.push({ type: "call_delta", args: "{}" });
    return { events, status: "done", rest };
  }

  #fail(events: CallEvent[], rest: string): ReadResult {
    return { events, status: "fail", rest };
  }
}
