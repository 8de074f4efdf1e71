/**
 * Finds where one JSON value ends in text that arrives piece by piece,
 * without parsing it: depth and string state only. Whitespace before the
 * value is skipped.
 */
export type ScanStep =
  /** The character belongs to the value (or leading whitespace); more is needed. */
  | "more"
  /** The character ended the value (and belongs to it). */
  | "done"
  /** The value (a number, true, false, null) ended before this character, which is not its. */
  | "done-before"
  | "error";

export class JsonValueScanner {
  #kind: "none" | "container" | "string" | "primitive" = "none";
  #depth = 0;
  #inString = false;
  #escape = false;

  get started(): boolean {
    return this.#kind !== "none";
  }

  get isString(): boolean {
    return this.#kind === "string";
  }

  feed(ch: string): ScanStep {
    switch (this.#kind) {
      case "none":
        if (/\s/.test(ch)) return "more";
        if (ch === "{" || ch === "[") {
          this.#kind = "container";
          this.#depth = 1;
          return "more";
        }
        if (ch === '"') {
          this.#kind = "string";
          this.#inString = true;
          return "more";
        }
        if (/[-0-9tfn]/.test(ch)) {
          this.#kind = "primitive";
          return "more";
        }
        return "error";
      case "string":
        if (this.#escape) this.#escape = false;
        else if (ch === "\\") this.#escape = true;
        else if (ch === '"') return "done";
        return "more";
      case "primitive":
        return /[\s,}\]]/.test(ch) ? "done-before" : "more";
      case "container":
        if (this.#inString) {
          if (this.#escape) this.#escape = false;
          else if (ch === "\\") this.#escape = true;
          else if (ch === '"') this.#inString = false;
          return "more";
        }
        if (ch === '"') this.#inString = true;
        else if (ch === "{" || ch === "[") this.#depth++;
        else if (ch === "}" || ch === "]") {
          this.#depth--;
          if (this.#depth === 0) return "done";
        }
        return "more";
    }
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
