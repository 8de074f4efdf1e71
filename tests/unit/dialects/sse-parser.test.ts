import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  createSseParser,
  encodeSseComment,
  encodeSseEvent,
  SseDecoder,
  type SseEvent,
} from "../../../src/dialects/sse/sse-parser.ts";

function parseAll(chunks: Array<string | Uint8Array>): SseEvent[] {
  const decoder = new SseDecoder();
  return [...chunks.flatMap((c) => decoder.push(c)), ...decoder.end()];
}

describe("SseDecoder", () => {
  test("LF, CRLF and CR line ends all separate lines and events", () => {
    for (const eol of ["\n", "\r\n", "\r"]) {
      const text = `event: a${eol}data: 1${eol}${eol}data: 2${eol}${eol}`;
      expect(parseAll([text])).toEqual([
        { event: "a", data: "1", id: "" },
        { event: "message", data: "2", id: "" },
      ]);
    }
  });

  test("a CRLF split between two chunks is one line end, not an empty line", () => {
    expect(parseAll(["data: a\r", "\ndata: b\r\n\r\n"])).toEqual([
      { event: "message", data: "a\nb", id: "" },
    ]);
  });

  test("multi-line data joins with LF; comments and unknown fields are ignored", () => {
    const text = ": keep-alive\ndata: first\nfoo: bar\ndata:second\ndata\n\n";
    expect(parseAll([text])).toEqual([{ event: "message", data: "first\nsecond\n", id: "" }]);
  });

  test("only one leading space of a value is stripped", () => {
    expect(parseAll(["data:  two spaces\n\n"])[0]?.data).toBe(" two spaces");
  });

  test("id persists across events, a NUL id is ignored, retry needs digits", () => {
    const text = "id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nid: x\0y\nretry: 1s\ndata: c\n\n";
    expect(parseAll([text])).toEqual([
      { event: "message", data: "a", id: "7", retry: 1500 },
      { event: "message", data: "b", id: "7" },
      { event: "message", data: "c", id: "7" },
    ]);
  });

  test("a block without data dispatches nothing and resets the event type", () => {
    expect(parseAll(["event: ping\n\ndata: x\n\n"])).toEqual([{ event: "message", data: "x", id: "" }]);
  });

  test("an unterminated event at end of stream is dropped, as the spec says", () => {
    expect(parseAll(["data: complete\n\ndata: partial"])).toEqual([
      { event: "message", data: "complete", id: "" },
    ]);
  });

  test("a UTF-8 BOM is skipped and multi-byte characters split across chunks survive", () => {
    const bytes = new TextEncoder().encode("\uFEFFdata: héllo 🌍\n\n");
    const chunks = Array.from(bytes, (b) => new Uint8Array([b]));
    expect(parseAll(chunks)).toEqual([{ event: "message", data: "héllo 🌍", id: "" }]);
  });

  test("property: any split of the byte stream yields the same events", () => {
    const line = fc.string({ unit: fc.constantFrom("a", "é", "🌍", ":", " ", "x", "{", "}", '"') });
    const event = fc.record({
      event: fc.option(fc.constantFrom("message_start", "ping", "error"), { nil: undefined }),
      lines: fc.array(line, { minLength: 1, maxLength: 3 }),
    });
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 6 }),
        fc.constantFrom("\n", "\r\n", "\r"),
        fc.array(fc.nat(), { maxLength: 12 }),
        (events, eol, cuts) => {
          const text = events
            .map(
              (e) =>
                `${e.event ? `event: ${e.event}${eol}` : ""}${e.lines.map((l) => `data: ${l}${eol}`).join("")}${eol}`,
            )
            .join(`: comment${eol}`);
          const bytes = new TextEncoder().encode(text);
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Uint8Array[] = [];
          let from = 0;
          for (const p of [...points, bytes.length]) {
            chunks.push(bytes.slice(from, p));
            from = p;
          }
          const expected = events.map((e) => ({
            event: e.event ?? "message",
            data: e.lines.join("\n"),
            id: "",
          }));
          expect(parseAll([bytes])).toEqual(expected);
          expect(parseAll(chunks)).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("encodeSseEvent", () => {
  test("writes event, id, retry and one data line per line of data", () => {
    expect(encodeSseEvent({ event: "e", id: "1", retry: 10, data: "a\nb" })).toBe(
      "event: e\nid: 1\nretry: 10\ndata: a\ndata: b\n\n",
    );
    expect(encodeSseComment("ping")).toBe(": ping\n\n");
  });

  test("refuses an event name that would break the framing", () => {
    expect(() => encodeSseEvent({ event: "a\nb", data: "" })).toThrow();
  });

  test("property: what the encoder writes, the parser reads back", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ event: fc.constantFrom("message", "x", "content_block_delta"), data: fc.string() }),
          {
            maxLength: 5,
          },
        ),
        (frames) => {
          const text = frames.map((f) => encodeSseEvent(f)).join("");
          const normalized = frames.map((f) => ({ ...f, data: f.data.replace(/\r\n|\r/g, "\n") }));
          expect(parseAll([text]).map(({ event, data }) => ({ event, data }))).toEqual(normalized);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("createSseParser", () => {
  test("works as a TransformStream over a byte stream", async () => {
    const body = new Response("event: a\ndata: 1\n\ndata: 2\n\n").body!;
    const events: SseEvent[] = [];
    for await (const e of body.pipeThrough(createSseParser())) events.push(e);
    expect(events.map((e) => e.data)).toEqual(["1", "2"]);
  });
});
