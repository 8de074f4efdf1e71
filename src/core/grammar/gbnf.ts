/**
 * Small GBNF building blocks shared by the JSON Schema and regex
 * translators: literal and character-class escaping, and a rule set that
 * names rules uniquely and reuses a rule whose body it has seen before.
 */

/** A keyword or construct a translator cannot honour; `path` is dotted, relative to the schema. */
export class GrammarUnsupportedError extends Error {
  override readonly name = "GrammarUnsupportedError";
  readonly path: string;

  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.path = path;
  }
}

function escapeCodePoint(cp: number, inClass: boolean): string {
  const ch = String.fromCodePoint(cp);
  if (/[A-Za-z0-9 ]/.test(ch)) return ch;
  if (!inClass && /[!#$%&'()*+,./:;<=>?@^_`{|}~]/.test(ch)) return ch;
  if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, "0")}`;
  if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, "0")}`;
  return `\\U${cp.toString(16).padStart(8, "0")}`;
}

/** A GBNF string literal matching `text` exactly. */
export function literal(text: string): string {
  let out = '"';
  for (const ch of text) out += escapeCodePoint(ch.codePointAt(0)!, false);
  return `${out}"`;
}

/** One end of a character-class range. */
export function classChar(cp: number): string {
  return escapeCodePoint(cp, true);
}

/** A set of named GBNF rules; the start rule is `root`. */
export class RuleSet {
  readonly #rules = new Map<string, string>();
  readonly #byBody = new Map<string, string>();

  /** Reserves a fresh name derived from `hint` (for rules defined later, recursion). */
  reserve(hint: string): string {
    const base =
      hint
        .replace(/[^A-Za-z0-9-]+/g, "-")
        .replace(/^-+|-+$/g, "")
        .toLowerCase() || "r";
    let name = base;
    for (let i = 2; this.#rules.has(name) || name === "root"; i++) name = `${base}-${i}`;
    this.#rules.set(name, "");
    return name;
  }

  define(name: string, body: string): string {
    this.#rules.set(name, body);
    return name;
  }

  /** A rule with this body: an existing one if the same body was added before. */
  add(hint: string, body: string): string {
    const existing = this.#byBody.get(body);
    if (existing !== undefined) return existing;
    const name = this.define(this.reserve(hint), body);
    this.#byBody.set(body, name);
    return name;
  }

  has(name: string): boolean {
    return this.#rules.has(name);
  }

  /** The grammar text with `root ::= rootBody` first. */
  render(rootBody: string): string {
    const lines = [`root ::= ${rootBody}`];
    for (const [name, body] of this.#rules) lines.push(`${name} ::= ${body}`);
    return `${lines.join("\n")}\n`;
  }
}
