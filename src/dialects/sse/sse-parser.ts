/**
 * Server-sent events, parsed as the WHATWG HTML spec says
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
 * lines end in CRLF, LF or CR (a CRLF split across two chunks is one line
 * end), `data:` lines join with "\n", `:` lines are comments, `id:` and
 * `retry:` are honoured, and an unterminated event at end of stream is
 * dropped.
 */

export interface SseEvent {
  /** The `event:` field, or "message" when absent. */
  event: string;
  data: string;
  /** The last event id seen so far in the stream (spec: "last event ID"). */
  id: string;
  /** The `retry:` value given in this event's block, in milliseconds. */
  retry?: number;
}

const wholeUtf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/** Incremental parser state; `push` returns the events completed by a chunk. */
export class SseDecoder {
  #buffer = "";
  #skipLeadingLf = false;
  #bomChecked = false;
  #eventType = "";
  readonly #data: string[] = [];
  #lastEventId = "";
  #retry: number | undefined;
  /** Made on the first chunk that may end inside a character; until then `wholeUtf8` decodes. */
  #utf8: TextDecoder | undefined;

  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === "string" ? chunk : this.#decode(chunk);
    if (!this.#bomChecked && text.length > 0) {
      this.#bomChecked = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    return this.#consume(text);
  }

  /** End of stream: flushes the UTF-8 decoder; a partial event is discarded per spec. */
  end(): SseEvent[] {
    const rest = this.#utf8?.decode() ?? "";
    const events = rest.length > 0 ? this.#consume(rest) : [];
    this.#buffer = "";
    this.#data.length = 0;
    this.#eventType = "";
    return events;
  }

  /**
   * A chunk that ends in an ASCII byte, with no partial character carried
   * over, is whole UTF-8 and is decoded by the shared decoder: most streams
   * never need a decoder of their own (one per request was a measurable
   * share of the gateway's time). The BOM is left in either way and dropped
   * by `push` at the start of the stream only.
   */
  #decode(chunk: Uint8Array): string {
    if (this.#utf8 === undefined) {
      const last = chunk.length === 0 ? 0 : (chunk[chunk.length - 1] as number);
      if (last < 0x80) return wholeUtf8.decode(chunk);
      this.#utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
    }
    return this.#utf8.decode(chunk, { stream: true });
  }

  #consume(text: string): SseEvent[] {
    const events: SseEvent[] = [];
    let input = text;
    if (this.#skipLeadingLf && input.length > 0) {
      this.#skipLeadingLf = false;
      if (input.charCodeAt(0) === 0x0a) input = input.slice(1);
    }
    const buffer = this.#buffer === "" ? input : this.#buffer + input;
    // Line ends found with indexOf (native scans), not a JS loop over every character.
    let start = 0;
    let lf = buffer.indexOf("\n");
    let cr = buffer.indexOf("\r");
    while (lf !== -1 || cr !== -1) {
      let end: number;
      let next: number;
      if (cr === -1 || (lf !== -1 && lf < cr)) {
        end = lf;
        next = lf + 1;
      } else {
        end = cr;
        next = cr + 1;
        if (next === buffer.length) {
          // A CR at the very end may be the first half of a CRLF split across chunks.
          this.#skipLeadingLf = true;
        } else if (buffer.charCodeAt(next) === 0x0a) next += 1;
      }
      const event =
        // The common line, `data: …`, without slicing the field name off first.
        buffer.startsWith("data:", start)
          ? this.#dataLine(buffer, start + 5, end)
          : this.#line(buffer.slice(start, end));
      if (event) events.push(event);
      start = next;
      if (lf !== -1 && lf < start) lf = buffer.indexOf("\n", start);
      if (cr !== -1 && cr < start) cr = buffer.indexOf("\r", start);
    }
    this.#buffer = start === 0 ? buffer : buffer.slice(start);
    return events;
  }

  #dataLine(buffer: string, from: number, end: number): undefined {
    this.#data.push(buffer.slice(buffer.charCodeAt(from) === 0x20 && from < end ? from + 1 : from, end));
    return undefined;
  }

  #line(line: string): SseEvent | undefined {
    if (line.length === 0) return this.#dispatch();
    if (line.charCodeAt(0) === 0x3a) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    switch (field) {
      case "event":
        this.#eventType = value;
        break;
      case "data":
        this.#data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.#lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.#retry = Number(value);
        break;
      default:
        break;
    }
    return undefined;
  }

  #dispatch(): SseEvent | undefined {
    const retry = this.#retry;
    this.#retry = undefined;
    if (this.#data.length === 0) {
      this.#eventType = "";
      return undefined;
    }
    const data = this.#data;
    const event: SseEvent = {
      event: this.#eventType === "" ? "message" : this.#eventType,
      data: data.length === 1 ? (data[0] as string) : data.join("\n"),
      id: this.#lastEventId,
    };
    if (retry !== undefined) event.retry = retry;
    data.length = 0;
    this.#eventType = "";
    return event;
  }
}

/** Bytes (or text) of an event stream in, parsed events out. */
export function createSseParser(): TransformStream<Uint8Array | string, SseEvent> {
  const decoder = new SseDecoder();
  return new TransformStream({
    transform(chunk, controller) {
      for (const event of decoder.push(chunk)) controller.enqueue(event);
    },
    flush(controller) {
      for (const event of decoder.end()) controller.enqueue(event);
    },
  });
}

export interface SseFrame {
  event?: string;
  data: string;
  id?: string;
  retry?: number;
}

/** One event as wire text, ending in the blank line that dispatches it. */
export function encodeSseEvent(frame: SseFrame): string {
  let out = "";
  if (frame.event !== undefined) out += `event: ${assertSingleLine(frame.event, "event")}\n`;
  if (frame.id !== undefined) out += `id: ${assertSingleLine(frame.id, "id")}\n`;
  if (frame.retry !== undefined) out += `retry: ${Math.max(0, Math.trunc(frame.retry))}\n`;
  // JSON payloads have no raw line breaks: one data line, without a split.
  if (!hasLineBreak(frame.data)) return `${out}data: ${frame.data}\n\n`;
  for (const line of frame.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/**
 * One event whose data is JSON text (`JSON.stringify` output, which never
 * holds a raw line break): one data line, with no line-break scan, which
 * would flatten the caller's concatenated string a second time per token.
 */
export function encodeSseJson(json: string, event?: string): string {
  return event === undefined
    ? `data: ${json}\n\n`
    : `event: ${assertSingleLine(event, "event")}\ndata: ${json}\n\n`;
}

/** A comment line; clients ignore it, proxies see traffic (keep-alive). */
export function encodeSseComment(text = ""): string {
  return `: ${assertSingleLine(text, "comment")}\n\n`;
}

function hasLineBreak(value: string): boolean {
  return value.includes("\n") || value.includes("\r");
}

function assertSingleLine(value: string, what: string): string {
  if (hasLineBreak(value)) throw new Error(`SSE ${what} must not contain a line break`);
  return value;
}
