/**
 * The common shape of every model-output parser: a pure, incremental state
 * machine fed the generated text piece by piece. It splits the text into the
 * answer, the reasoning and tool calls (a call's arguments as JSON text,
 * streamed as they are generated), holding back only what may still turn
 * out to be a marker. Any split of the same text yields the same events,
 * up to how text and argument deltas are cut.
 */
import { longestStopPrefixSuffix } from "../engine/stop-matcher.ts";

export type ParsedEvent =
  | { type: "text"; text: string }
  | { type: "reasoning"; text: string }
  | { type: "call_start"; name: string }
  | { type: "call_delta"; args: string }
  | { type: "call_end" };

export interface OutputParser {
  push(text: string): ParsedEvent[];
  /** The output ended: held text is released; a call cut mid-way ends with what was generated. */
  end(): ParsedEvent[];
}

/** The text before the earliest of `markers` in `buffer`, and which marker (if any). */
export interface MarkerScan {
  before: string;
  marker?: string;
  after: string;
}

/**
 * Finds the earliest marker. Without one, `before` is what is safe to emit
 * (a tail that may grow into a marker is kept in `after`, unless `final`).
 */
export function scanMarkers(buffer: string, markers: readonly string[], final: boolean): MarkerScan {
  let at = -1;
  let which: string | undefined;
  for (const marker of markers) {
    const i = buffer.indexOf(marker);
    if (i >= 0 && (at < 0 || i < at || (i === at && marker.length > which!.length))) {
      at = i;
      which = marker;
    }
  }
  if (which !== undefined)
    return { before: buffer.slice(0, at), marker: which, after: buffer.slice(at + which.length) };
  const keep = final ? 0 : longestStopPrefixSuffix(buffer, markers);
  return { before: buffer.slice(0, buffer.length - keep), after: buffer.slice(buffer.length - keep) };
}

/**
 * Base of the parsers: a buffer, the events found so far, and the answer's
 * text emitted with whitespace around calls dropped (trailing whitespace is
 * held until more text follows; text right after a call loses its leading
 * whitespace).
 */
export abstract class BufferedParser implements OutputParser {
  protected buffer = "";
  protected calls = 0;
  #events: ParsedEvent[] = [];
  #ws = "";
  #afterCall = false;
  #inCall = false;

  push(text: string): ParsedEvent[] {
    this.buffer += text;
    this.step(false);
    return this.#drain();
  }

  end(): ParsedEvent[] {
    this.step(true);
    if (this.#inCall) this.endCall();
    if (this.calls === 0 && this.#ws) this.#events.push({ type: "text", text: this.#ws });
    this.#ws = "";
    return this.#drain();
  }

  /** Consumes as much of `this.buffer` as it can; `final`: nothing more will come. */
  protected abstract step(final: boolean): void;

  protected text(text: string): void {
    if (text === "") return;
    let all = this.#ws + text;
    if (this.#afterCall) {
      all = all.trimStart();
      if (all === "") return;
      this.#afterCall = false;
    }
    const trailing = /\s*$/.exec(all)!.index;
    this.#ws = all.slice(trailing);
    if (trailing > 0) this.#events.push({ type: "text", text: all.slice(0, trailing) });
  }

  protected reasoning(text: string): void {
    if (text !== "") this.#events.push({ type: "reasoning", text });
  }

  protected startCall(name: string): void {
    if (this.#inCall) this.endCall();
    this.#ws = "";
    this.#inCall = true;
    this.calls++;
    this.#events.push({ type: "call_start", name });
  }

  protected args(text: string): void {
    if (text !== "") this.#events.push({ type: "call_delta", args: text });
  }

  protected endCall(): void {
    if (!this.#inCall) return;
    this.#inCall = false;
    this.#afterCall = true;
    this.#events.push({ type: "call_end" });
  }

  protected get inCall(): boolean {
    return this.#inCall;
  }

  #drain(): ParsedEvent[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }
}

/** The whole output's events, merged (for tests and the non-streamed fold). */
export interface ParsedOutput {
  text: string;
  reasoning: string;
  calls: Array<{ name: string; arguments: string }>;
}

export function foldEvents(events: Iterable<ParsedEvent>): ParsedOutput {
  const out: ParsedOutput = { text: "", reasoning: "", calls: [] };
  for (const event of events) {
    if (event.type === "text") out.text += event.text;
    else if (event.type === "reasoning") out.reasoning += event.text;
    else if (event.type === "call_start") out.calls.push({ name: event.name, arguments: "" });
    else if (event.type === "call_delta") out.calls[out.calls.length - 1]!.arguments += event.args;
  }
  return out;
}
