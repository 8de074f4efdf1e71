/**
 * The subset of JSON Schema `pattern` regexes (ECMAScript syntax) that
 * translates to GBNF: literals, `.`, classes (`[a-z]`, `[^…]`, `\d \w \s`
 * and their negations), groups, alternation, the quantifiers `* + ? {n}
 * {n,} {n,m}` (lazy or not: same language), and `^` / `$` at the ends.
 * Lookaround, backreferences and word boundaries have no grammar
 * equivalent and are refused by name.
 *
 * The result matches the JSON string's *content* as it appears in the JSON
 * text, so it never lets through a raw `"`, `\` or control character:
 * negated classes and `.` exclude them, and a pattern that names one is
 * refused. An unanchored side matches any further characters there.
 */
import { classChar, GrammarUnsupportedError, literal } from "./gbnf.ts";

/** GBNF for one character of JSON string content that a regex `.` or negated class may produce. */
const EXCLUDED = '"\\\\\\x00-\\x1f\\x7f';
const ANY_CHAR = `[^${EXCLUDED}]`;

const DIGIT: Array<[number, number]> = [[0x30, 0x39]];
const WORD: Array<[number, number]> = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x5f, 0x5f],
  [0x61, 0x7a],
];
/** Only the space: `\s`'s other members are control characters a JSON string must escape. */
const SPACE: Array<[number, number]> = [[0x20, 0x20]];

interface ClassSet {
  negated: boolean;
  ranges: Array<[number, number]>;
}

/**
 * Translates `pattern` to a GBNF expression for a JSON string's content.
 * `path` names the pattern in errors.
 */
export function regexToGbnf(pattern: string, path: string): string {
  return new RegexParser(pattern, path).translate();
}

class RegexParser {
  readonly #src: string[];
  readonly #path: string;
  #at = 0;

  constructor(pattern: string, path: string) {
    this.#src = [...pattern];
    this.#path = path;
  }

  #fail(message: string): never {
    throw new GrammarUnsupportedError(this.#path, message);
  }

  #peek(offset = 0): string | undefined {
    return this.#src[this.#at + offset];
  }

  translate(): string {
    const anchoredStart = this.#peek() === "^";
    if (anchoredStart) this.#at++;
    const body = this.#alternation(true);
    if (this.#at < this.#src.length) this.#fail(`unexpected ${this.#peek()} in the pattern`);
    const parts = [
      anchoredStart ? "" : `${ANY_CHAR}*`,
      `(${body.expr})`,
      body.anchoredEnd ? "" : `${ANY_CHAR}*`,
    ];
    return parts.filter((p) => p !== "").join(" ");
  }

  #alternation(top: boolean): { expr: string; anchoredEnd: boolean } {
    const branches: string[] = [];
    let anchoredEnd: boolean | undefined;
    for (;;) {
      const branch = this.#sequence(top);
      if (top) {
        if (anchoredEnd !== undefined && anchoredEnd !== branch.anchoredEnd)
          this.#fail("`$` on only some alternatives is not supported");
        anchoredEnd = branch.anchoredEnd;
      }
      branches.push(branch.expr);
      if (this.#peek() !== "|") break;
      this.#at++;
    }
    return { expr: branches.join(" | "), anchoredEnd: anchoredEnd ?? false };
  }

  #sequence(top: boolean): { expr: string; anchoredEnd: boolean } {
    const items: string[] = [];
    for (;;) {
      const c = this.#peek();
      if (c === undefined || c === "|" || c === ")") break;
      if (c === "$") {
        this.#at++;
        const next = this.#peek();
        if (!top || (next !== undefined && next !== "|"))
          this.#fail("`$` anywhere but at the end is not supported");
        return { expr: items.join(" ") || '""', anchoredEnd: true };
      }
      if (c === "^") this.#fail("`^` anywhere but at the start is not supported");
      const atom = this.#atom();
      items.push(this.#quantified(atom));
    }
    return { expr: items.join(" ") || '""', anchoredEnd: false };
  }

  #quantified(atom: string): string {
    const c = this.#peek();
    let min: number;
    let max: number | undefined;
    if (c === "*" || c === "+" || c === "?") {
      this.#at++;
      min = c === "+" ? 1 : 0;
      max = c === "?" ? 1 : undefined;
    } else if (c === "{" && /^\{\d+(,\d*)?\}/.test(this.#src.slice(this.#at).join(""))) {
      const text = /^\{(\d+)(,(\d*))?\}/.exec(this.#src.slice(this.#at).join(""))!;
      this.#at += [...text[0]].length;
      min = Number(text[1]);
      max = text[2] === undefined ? min : text[3] === "" ? undefined : Number(text[3]);
      if (max !== undefined && max < min) this.#fail(`quantifier ${text[0]} has max below min`);
    } else {
      return atom;
    }
    // Lazy or possessive markers do not change the language.
    if (this.#peek() === "?" || this.#peek() === "+") this.#at++;
    if (min === 0 && max === undefined) return `${atom}*`;
    if (min === 1 && max === undefined) return `${atom}+`;
    if (min === 0 && max === 1) return `${atom}?`;
    return `${atom}{${min},${max ?? ""}}`;
  }

  #atom(): string {
    const c = this.#src[this.#at++]!;
    switch (c) {
      case "(":
        return this.#group();
      case "[":
        return this.#renderClass(this.#class());
      case ".":
        return `[^${EXCLUDED}\\x0a\\x0d\\u2028\\u2029]`;
      case "\\":
        return this.#escape();
      case "*":
      case "+":
      case "?":
        return this.#fail(`nothing to repeat before ${c}`);
      default:
        return this.#literalChar(c.codePointAt(0)!);
    }
  }

  #group(): string {
    if (this.#peek() === "?") {
      const next = this.#peek(1);
      const after = this.#peek(2);
      if (next === ":") this.#at += 2;
      else if (next === "=" || next === "!") this.#fail("lookahead is not supported");
      else if (next === "<" && (after === "=" || after === "!")) this.#fail("lookbehind is not supported");
      else if (next === "<") {
        const close = this.#src.indexOf(">", this.#at);
        if (close < 0) this.#fail("unterminated group name");
        this.#at = close + 1;
      } else this.#fail(`group modifier (?${next ?? ""} is not supported`);
    }
    const inner = this.#alternation(false);
    if (this.#src[this.#at++] !== ")") this.#fail("unbalanced parenthesis");
    return `(${inner.expr})`;
  }

  #literalChar(cp: number): string {
    if (cp === 0x22 || cp === 0x5c || cp < 0x20 || cp === 0x7f)
      this.#fail(`a pattern matching ${JSON.stringify(String.fromCodePoint(cp))} is not supported`);
    return literal(String.fromCodePoint(cp));
  }

  /** An escape outside a class, after its backslash. */
  #escape(): string {
    const set = this.#classEscape();
    if (Array.isArray(set)) return this.#literalChar(set[0]![0]);
    return this.#renderClass(set);
  }

  /** A class shorthand (\d …) as a set, or one character as a one-range list. */
  #classEscape(): ClassSet | Array<[number, number]> {
    const c = this.#src[this.#at++];
    if (c === undefined) this.#fail("the pattern ends in a backslash");
    switch (c) {
      case "d":
        return { negated: false, ranges: DIGIT };
      case "D":
        return { negated: true, ranges: DIGIT };
      case "w":
        return { negated: false, ranges: WORD };
      case "W":
        return { negated: true, ranges: WORD };
      case "s":
        return { negated: false, ranges: SPACE };
      case "S":
        return { negated: true, ranges: SPACE };
      case "b":
      case "B":
        return this.#fail("word boundaries are not supported");
      case "n":
        return [[0x0a, 0x0a]];
      case "t":
        return [[0x09, 0x09]];
      case "r":
        return [[0x0d, 0x0d]];
      case "x": {
        const hex = this.#src.slice(this.#at, this.#at + 2).join("");
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) this.#fail("malformed \\x escape");
        this.#at += 2;
        const cp = Number.parseInt(hex, 16);
        return [[cp, cp]];
      }
      case "u": {
        const hex = this.#src.slice(this.#at, this.#at + 4).join("");
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.#fail("malformed \\u escape");
        this.#at += 4;
        const cp = Number.parseInt(hex, 16);
        return [[cp, cp]];
      }
      default:
        if (/[1-9]/.test(c)) this.#fail("backreferences are not supported");
        if (/[A-Za-z0-9]/.test(c)) this.#fail(`the escape \\${c} is not supported`);
        return [[c.codePointAt(0)!, c.codePointAt(0)!]];
    }
  }

  #class(): ClassSet {
    const negated = this.#peek() === "^";
    if (negated) this.#at++;
    const ranges: Array<[number, number]> = [];
    let first = true;
    for (;;) {
      const c = this.#src[this.#at++];
      if (c === undefined) this.#fail("unterminated character class");
      if (c === "]" && !first) break;
      first = false;
      let lo: number;
      if (c === "\\") {
        const escaped = this.#classEscape();
        if (!Array.isArray(escaped)) {
          if (escaped.negated) this.#fail("a negated shorthand inside a class is not supported");
          ranges.push(...escaped.ranges);
          continue;
        }
        lo = escaped[0]![0];
      } else {
        lo = c.codePointAt(0)!;
      }
      let hi = lo;
      if (this.#peek() === "-" && this.#peek(1) !== "]" && this.#peek(1) !== undefined) {
        this.#at++;
        const d = this.#src[this.#at++]!;
        if (d === "\\") {
          const escaped = this.#classEscape();
          if (!Array.isArray(escaped)) this.#fail("a shorthand cannot end a range");
          hi = escaped[0]![0];
        } else hi = d.codePointAt(0)!;
        if (hi < lo) this.#fail("a class range runs backwards");
      }
      ranges.push([lo, hi]);
    }
    return { negated, ranges };
  }

  #renderClass(set: ClassSet): string {
    const body = set.ranges.map(([lo, hi]) =>
      lo === hi ? classChar(lo) : `${classChar(lo)}-${classChar(hi)}`,
    );
    if (set.negated) return `[^${body.join("")}${EXCLUDED}]`;
    for (const [lo, hi] of set.ranges) {
      const touches = (a: number, b: number) => lo <= b && hi >= a;
      if (touches(0x22, 0x22) || touches(0x5c, 0x5c) || touches(0x00, 0x1f) || touches(0x7f, 0x7f))
        this.#fail('a character class that includes ", \\ or control characters is not supported');
    }
    return `[${body.join("")}]`;
  }
}
