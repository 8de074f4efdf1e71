import { describe, expect, test } from "bun:test";
import { MAX_JSON_DEPTH, nestingDepth } from "../../src/gateway/read-json-body.ts";

/** The plain definition, one code unit at a time: what nestingDepth must agree with. */
function reference(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") {
      depth++;
      deepest = Math.max(deepest, depth);
      if (deepest > limit) return deepest;
    } else if (c === "}" || c === "]") depth--;
  }
  return deepest;
}

describe("the nesting depth of a request body", () => {
  test("brackets count outside strings only, whatever the strings escape", () => {
    expect(nestingDepth('{"a":[1,{"b":[]}]}', 128)).toBe(4);
    expect(nestingDepth('{"a":"[[[{{{"}', 128)).toBe(1);
    // An escaped quote does not end the string; an escaped backslash before a quote does.
    expect(nestingDepth('["a\\"[[[", []]', 128)).toBe(2);
    expect(nestingDepth('["a\\\\", [[]]]', 128)).toBe(3);
    expect(nestingDepth('["a\\\\\\"[[", [[]]]', 128)).toBe(3);
    expect(nestingDepth('{"é\\u005c":"[[", "v":[[]]}', 128)).toBe(3);
  });

  test("a string left open hides the rest; malformed text is left to JSON.parse", () => {
    expect(nestingDepth('[["open [[[[', 128)).toBe(2);
    expect(nestingDepth("]]]", 128)).toBe(0);
  });

  test("stops as soon as the limit is passed", () => {
    const deep = `${"[".repeat(10_000)}${"]".repeat(10_000)}`;
    expect(nestingDepth(deep, MAX_JSON_DEPTH)).toBe(MAX_JSON_DEPTH + 1);
  });

  test("agrees with the plain definition on random text of quotes, backslashes and brackets", () => {
    const alphabet = ['"', "\\", "[", "]", "{", "}", "a", " ", ","];
    let seed = 42;
    const next = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let n = 0; n < 20_000; n++) {
      let text = "";
      const length = 1 + Math.floor(next() * 40);
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(next() * alphabet.length)];
      expect({ text, depth: nestingDepth(text, 6) }).toEqual({ text, depth: reference(text, 6) });
    }
  });
});
