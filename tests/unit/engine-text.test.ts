import { describe, expect, test } from "bun:test";
import { longestStopPrefixSuffix, StopMatcher } from "../../src/neuron/engine/stop-matcher.ts";
import { TokenText } from "../../src/neuron/engine/token-text.ts";

function feed(matcher: StopMatcher, pieces: string[]): { text: string; stopped?: string } {
  let text = "";
  for (const piece of pieces) {
    const out = matcher.push(piece);
    text += out.text;
    if (out.stopped !== undefined) return { text, stopped: out.stopped };
  }
  return { text: text + matcher.flush() };
}

describe("StopMatcher", () => {
  test.each([
    { pieces: ["Hello world"], stops: [], text: "Hello world", stopped: undefined },
    { pieces: ["Hello", " END", " more"], stops: ["END"], text: "Hello ", stopped: "END" },
    { pieces: ["Hel", "lo E", "N", "D tail"], stops: ["END"], text: "Hello ", stopped: "END" },
    { pieces: ["a<", "/s", "> b"], stops: ["</s>"], text: "a", stopped: "</s>" },
    { pieces: ["EN", "x"], stops: ["END"], text: "ENx", stopped: undefined },
    { pieces: ["one two three"], stops: ["three", "two"], text: "one ", stopped: "two" },
    { pieces: ["ab"], stops: ["abc"], text: "ab", stopped: undefined },
  ])("$pieces with $stops", ({ pieces, stops, text, stopped }) => {
    const out = feed(new StopMatcher(stops), [...pieces]);
    expect(out.text).toBe(text);
    expect(out.stopped).toBe(stopped);
  });

  test("text that could begin a stop string is held, not emitted", () => {
    const matcher = new StopMatcher(["###"]);
    expect(matcher.push("answer #").text).toBe("answer ");
    expect(matcher.push("#").text).toBe("");
    expect(matcher.push(" no").text).toBe("## no");
  });

  test("longestStopPrefixSuffix", () => {
    expect(longestStopPrefixSuffix("abc<|im", ["<|im_end|>"])).toBe(4);
    expect(longestStopPrefixSuffix("abc", ["x"])).toBe(0);
    expect(longestStopPrefixSuffix("xx", ["xxx", "x"])).toBe(2);
  });
});

describe("TokenText", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);

  test("a multi-byte character split across tokens is emitted whole", () => {
    const euro = bytes("€"); // 3 bytes
    const text = new TokenText();
    expect(text.push(bytes("price ")).text).toBe("price ");
    expect(text.push(euro.subarray(0, 1)).text).toBe("");
    expect(text.push(euro.subarray(1, 2)).text).toBe("");
    expect(text.push(euro.subarray(2)).text).toBe("€");
    expect(text.finish()).toBe("");
  });

  test("an emoji split inside a stop-string search still stops cleanly", () => {
    const text = new TokenText(["🙂 bye"]);
    const smile = bytes("🙂");
    let out = text.push(bytes("hi "));
    expect(out.text).toBe("hi ");
    out = text.push(smile.subarray(0, 2));
    expect(out.text).toBe("");
    out = text.push(new Uint8Array([...smile.subarray(2), ...bytes(" by")]));
    expect(out.text).toBe("");
    out = text.push(bytes("e!"));
    expect(out).toEqual({ text: "", stopped: "🙂 bye" });
  });

  test("an unfinished character at the end becomes U+FFFD instead of vanishing", () => {
    const text = new TokenText();
    text.push(bytes("€").subarray(0, 2));
    expect(text.finish()).toBe("\uFFFD");
  });
});
