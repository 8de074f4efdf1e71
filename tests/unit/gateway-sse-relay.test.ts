import { describe, expect, test } from "bun:test";
import { observeRelay, type RelayedStream, RelayScanner } from "../../src/gateway/sse-relay.ts";

const utf8 = new TextEncoder();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

const CHUNKS = [
  'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
  'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Grüße, "}}]}\n\n',
  'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"garden"}}]}\n\n',
  'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
].join("");
const TRAILER = {
  first_token_ms: 4,
  last_token_ms: 9,
  usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
  finish_reason: "stop",
};
const STREAM = `${CHUNKS}: cortex ${JSON.stringify(TRAILER)}\n\ndata: [DONE]\n\n`;
/** What the client gets: the stream without the trailer. */
const RELAYED = `${CHUNKS}data: [DONE]\n\n`;

function scan(parts: Uint8Array[]): { out: string; scanner: RelayScanner } {
  const scanner = new RelayScanner();
  const out: Uint8Array[] = [];
  for (const part of parts) out.push(scanner.push(part));
  return { out: text(Buffer.concat(out)), scanner };
}

describe("RelayScanner", () => {
  test("one chunk: every event through, the trailer read and cut out, ended at [DONE]", () => {
    const { out, scanner } = scan([utf8.encode(STREAM)]);
    expect(out).toBe(RELAYED);
    expect(scanner.trailer).toEqual(TRAILER);
    expect(scanner.done).toBe(true);
    expect(scanner.endedCleanly()).toBe(true);
  });

  test("split at every byte: the same bytes leave, only in whole events", () => {
    const bytes = utf8.encode(STREAM);
    for (let at = 1; at < bytes.length; at++) {
      const scanner = new RelayScanner();
      const first = scanner.push(bytes.slice(0, at));
      // Whole events only: what leaves ends with the blank line that closes an event.
      if (first.byteLength > 0) expect(text(first).endsWith("\n\n")).toBe(true);
      const out = text(first) + text(scanner.push(bytes.slice(at)));
      expect(out).toBe(RELAYED);
      expect(scanner.trailer).toEqual(TRAILER);
    }
  });

  test("one byte at a time", () => {
    const bytes = utf8.encode(STREAM);
    const { out, scanner } = scan([...bytes].map((byte) => Uint8Array.of(byte)));
    expect(out).toBe(RELAYED);
    expect(scanner.trailer).toEqual(TRAILER);
  });

  test("nothing after [DONE] is relayed", () => {
    const { out } = scan([utf8.encode(`${STREAM}data: {"late":true}\n\n`), utf8.encode("data: {}\n\n")]);
    expect(out).toBe(RELAYED);
  });

  test("an error event with its trailer ends the stream cleanly, without [DONE]", () => {
    const error =
      'data: {"error":{"message":"device fault","type":"server_error","param":null,"code":"device_fault"}}\n\n';
    const { out, scanner } = scan([
      utf8.encode(`${CHUNKS.split("\n\n")[0]}\n\n${error}: cortex {"error":"device_fault"}\n\n`),
    ]);
    expect(out.endsWith(error)).toBe(true);
    expect(out).not.toContain("cortex");
    expect(scanner.done).toBe(false);
    expect(scanner.endedCleanly()).toBe(true);
    expect(scanner.trailer?.error).toBe("device_fault");
  });

  test("a stream cut short: a partial event is held back, and the end is not clean", () => {
    const { out, scanner } = scan([utf8.encode(`${CHUNKS}data: {"id":"c1","choi`)]);
    expect(out).toBe(CHUNKS);
    expect(scanner.endedCleanly()).toBe(false);
  });

  test("a trailer that is not JSON is cut out and ignored", () => {
    const { out, scanner } = scan([utf8.encode(`${CHUNKS}: cortex {oops\n\ndata: [DONE]\n\n`)]);
    expect(out).toBe(RELAYED);
    expect(scanner.trailer).toBeUndefined();
    expect(scanner.endedCleanly()).toBe(true);
  });

  test("a comment that merely starts like the trailer inside a data line is left alone", () => {
    const data = 'data: {"choices":[{"delta":{"content":": cortex {}"}}]}\n\n';
    const { out, scanner } = scan([utf8.encode(`${data}data: [DONE]\n\n`)]);
    expect(out).toBe(`${data}data: [DONE]\n\n`);
    expect(scanner.trailer).toBeUndefined();
  });
});

describe("observeRelay", () => {
  const stream = (over: Partial<RelayedStream>): RelayedStream =>
    ({ trailer: undefined, failure: undefined, ended: true, sentAt: 0, ...over }) as RelayedStream;

  test("the trailer's token times count from when the request was sent", () => {
    expect(
      observeRelay(
        stream({
          trailer: { ...TRAILER, usage: { ...TRAILER.usage, prompt_tokens_details: { cached_tokens: 2 } } },
        }),
        1.5,
        false,
      ),
    ).toEqual({
      cancelled: false,
      firstTokenMs: 5.5,
      lastTokenMs: 10.5,
      usage: { inputTokens: 7, outputTokens: 3, cachedInputTokens: 2 },
    });
  });

  test("a failure the gateway saw wins over the trailer; a cancel is a cancel", () => {
    expect(observeRelay(stream({ failure: "upstream_error" }), 0, false).errorCode).toBe("upstream_error");
    expect(observeRelay(stream({ trailer: { error: "device_fault" } }), 0, false).errorCode).toBe(
      "device_fault",
    );
    expect(observeRelay(stream({}), 0, true)).toEqual({ cancelled: true });
  });
});
