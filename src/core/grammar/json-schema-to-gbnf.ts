/**
 * JSON Schema → GBNF, for grammar-constrained sampling: every text the
 * grammar accepts is JSON that validates against the schema.
 *
 * Supported: `type` (and type arrays), `properties`, `required`,
 * `additionalProperties`, `enum`, `const`, `anyOf`, `oneOf` (as anyOf: keep
 * the alternatives disjoint), `allOf` of object schemas, `items`,
 * `prefixItems`, `minItems`/`maxItems`, `minLength`/`maxLength`, integer
 * `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`, `$ref` into
 * `$defs`/`definitions` (recursion allowed), `nullable`, `format` (date,
 * time, date-time, uuid, email) and `pattern` (regex-to-gbnf.ts). Keywords
 * that only annotate (title, description, default, …) are ignored; any other
 * keyword is a GrammarUnsupportedError naming it and its path, never
 * dropped.
 *
 * Objects list their properties in the schema's order, required or not;
 * whitespace is at most one space after `:` and `,`, so the output stays
 * short and a model cannot pad it forever. Extra properties are allowed only
 * where `additionalProperties` says so (true or a schema), and never under
 * a declared name.
 *
 * Why one file of ~600 lines: it is one recursive translator over the
 * schema's keywords, whose rules call each other (objects, arrays and
 * references recurse into any schema); the pieces that stand alone, GBNF
 * building and regex translation, are their own modules.
 */
import { isJsonObject } from "../json-object.ts";
import { classChar, GrammarUnsupportedError, literal, RuleSet } from "./gbnf.ts";
import { regexToGbnf } from "./regex-to-gbnf.ts";

const ANNOTATIONS: ReadonlySet<string> = new Set([
  "title",
  "description",
  "$schema",
  "$id",
  "$comment",
  "$defs",
  "definitions",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "contentEncoding",
  "contentMediaType",
]);

const KEYWORDS: ReadonlySet<string> = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "allOf",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "$ref",
  "nullable",
  "format",
  "pattern",
  "uniqueItems",
]);

const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"] as const;
type JsonType = (typeof TYPES)[number];

/** Longest run of digits an unbounded integer may have (stays within JSON's safe integers). */
const MAX_DIGITS = 15;

type Schema = Record<string, unknown>;

const PRIMITIVES: Record<string, string> = {
  ws: '| " "',
  "json-char": '[^"\\\\\\x00-\\x1f\\x7f] | "\\\\" (["\\\\/bfnrt] | "u" json-hex4)',
  // No lone surrogates: a length check counts code points, and a pair escaped as two \u is one.
  "json-hex4": "([0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2})",
  "json-string": '"\\"" json-char* "\\""',
  "json-int": `"-"? ("0" | [1-9] [0-9]{0,${MAX_DIGITS - 1}})`,
  "json-number": `json-int ("." [0-9]{1,${MAX_DIGITS}})? ([eE] [-+]? [0-9]{1,2})?`,
  "json-boolean": '"true" | "false"',
  "json-null": '"null"',
  "json-value": "json-object | json-array | json-string | json-number | json-boolean | json-null",
  "json-object": '"{" (json-string ":" ws json-value ("," ws json-string ":" ws json-value)*)? "}"',
  "json-array": '"[" (json-value ("," ws json-value)*)? "]"',
  "json-date":
    '[0-9]{4} "-" ("0" [13578] "-" json-day31 | "1" [02] "-" json-day31 | "0" [469] "-" json-day30 | "11-" json-day30 | "02-" json-day28)',
  "json-day31": '"0" [1-9] | [12] [0-9] | "3" [01]',
  "json-day30": '"0" [1-9] | [12] [0-9] | "30"',
  "json-day28": '"0" [1-9] | "1" [0-9] | "2" [0-8]',
  "json-time":
    '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])',
  "json-uuid": '[0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12}',
  "json-email":
    '[a-zA-Z0-9_+-]{1,32} ("." [a-zA-Z0-9_+-]{1,32}){0,3} "@" json-label ("." json-label){0,3} "." [a-zA-Z]{2,12}',
  "json-label": "[a-zA-Z0-9] ([a-zA-Z0-9-]{0,30} [a-zA-Z0-9])?",
};

const FORMATS: Record<string, string> = {
  date: "json-date",
  time: "json-time",
  "date-time": 'json-date "T" json-time',
  uuid: "json-uuid",
  email: "json-email",
};

/**
 * Builds one grammar from any number of schemas (a response format, each
 * tool's arguments) so that shared primitives are defined once.
 */
export class JsonGrammar {
  readonly rules = new RuleSet();
  readonly #primitives = new Set<string>();
  readonly #refs = new WeakMap<object, Map<string, string>>();

  /** A rule for one of the fixed building blocks (`json-value`, `ws`, …), defined on first use. */
  primitive(name: string): string {
    if (this.#primitives.has(name)) return name;
    const body = PRIMITIVES[name];
    if (body === undefined) throw new Error(`no primitive ${name}`);
    this.#primitives.add(name);
    this.rules.define(name, body);
    for (const used of body.match(/json-[a-z0-9]+|\bws\b/g) ?? []) this.primitive(used);
    return name;
  }

  /**
   * The GBNF expression for values valid under `schema`, whose `$ref`s
   * resolve against itself. `path` names it in errors.
   */
  schema(schema: unknown, path: string): string {
    return this.#visit(schema, path, schema, path);
  }

  /** The whole grammar with `root ::= rootBody`. */
  render(rootBody: string): string {
    return this.rules.render(rootBody);
  }

  #visit(schema: unknown, path: string, root: unknown, rootPath: string): string {
    if (schema === true) return this.primitive("json-value");
    if (schema === false) throw new GrammarUnsupportedError(path, "the schema false allows no value");
    if (!isJsonObject(schema))
      throw new GrammarUnsupportedError(path, "a schema must be an object or a boolean");
    for (const key of Object.keys(schema))
      if (!KEYWORDS.has(key) && !ANNOTATIONS.has(key))
        throw new GrammarUnsupportedError(`${path}.${key}`, `the keyword ${key} is not supported`);
    if (schema.uniqueItems === true)
      throw new GrammarUnsupportedError(`${path}.uniqueItems`, "uniqueItems is not supported");

    const nullable = schema.nullable === true;
    const body = this.#visitNonNull(schema, path, root, rootPath);
    return nullable ? `(${body} | ${this.primitive("json-null")})` : body;
  }

  #visitNonNull(schema: Schema, path: string, root: unknown, rootPath: string): string {
    if (schema.$ref !== undefined) {
      const others = Object.keys(schema).filter(
        (k) => k !== "$ref" && k !== "nullable" && !ANNOTATIONS.has(k),
      );
      if (others.length > 0)
        throw new GrammarUnsupportedError(
          `${path}.${others[0]}`,
          `${others[0]} beside $ref is not supported`,
        );
      return this.#ref(schema.$ref, `${path}.$ref`, root, rootPath);
    }
    if (schema.const !== undefined) return literal(JSON.stringify(schema.const));
    if (schema.enum !== undefined) {
      if (!Array.isArray(schema.enum) || schema.enum.length === 0)
        throw new GrammarUnsupportedError(`${path}.enum`, "enum must be a non-empty array");
      return `(${schema.enum.map((v) => literal(JSON.stringify(v))).join(" | ")})`;
    }
    for (const key of ["anyOf", "oneOf"] as const) {
      const alternatives = schema[key];
      if (alternatives === undefined) continue;
      if (!Array.isArray(alternatives) || alternatives.length === 0)
        throw new GrammarUnsupportedError(`${path}.${key}`, `${key} must be a non-empty array`);
      // A keyword beside the alternatives (even `type`) would have to hold for each of them.
      const rest = Object.keys(schema).filter((k) => k !== key && k !== "nullable" && !ANNOTATIONS.has(k));
      if (rest.length > 0)
        throw new GrammarUnsupportedError(`${path}.${rest[0]}`, `${rest[0]} beside ${key} is not supported`);
      const exprs = alternatives.map((alt, i) => this.#visit(alt, `${path}.${key}.${i}`, root, rootPath));
      return this.rules.add(`${path}-${key}`, exprs.join(" | "));
    }
    if (schema.allOf !== undefined)
      return this.#object(this.#mergeAllOf(schema, path, root, rootPath), path, root, rootPath);

    const types = this.#types(schema, path);
    const exprs = types.map((type) => this.#typed(type, schema, path, root, rootPath));
    return exprs.length === 1 ? exprs[0]! : `(${exprs.join(" | ")})`;
  }

  #types(schema: Schema, path: string): JsonType[] {
    const declared = schema.type;
    if (declared !== undefined) {
      const list = Array.isArray(declared) ? declared : [declared];
      if (list.length === 0) throw new GrammarUnsupportedError(`${path}.type`, "type must not be empty");
      for (const t of list)
        if (!TYPES.includes(t as JsonType))
          throw new GrammarUnsupportedError(`${path}.type`, `unknown type ${JSON.stringify(t)}`);
      return list as JsonType[];
    }
    const has = (...keys: string[]) => keys.some((k) => schema[k] !== undefined);
    if (has("properties", "required", "additionalProperties")) return ["object"];
    if (has("items", "prefixItems", "minItems", "maxItems")) return ["array"];
    if (has("minLength", "maxLength", "pattern", "format")) return ["string"];
    if (has("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")) return ["number"];
    return ["object", "array", "string", "number", "boolean", "null"];
  }

  #typed(type: JsonType, schema: Schema, path: string, root: unknown, rootPath: string): string {
    switch (type) {
      case "object":
        return this.#object(schema, path, root, rootPath);
      case "array":
        return this.#array(schema, path, root, rootPath);
      case "string":
        return this.#string(schema, path);
      case "integer":
        return this.#integer(schema, path);
      case "number":
        for (const key of ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"])
          if (schema[key] !== undefined)
            throw new GrammarUnsupportedError(
              `${path}.${key}`,
              `${key} is supported on integers only; use type "integer" or drop the bound`,
            );
        return this.primitive("json-number");
      case "boolean":
        return this.primitive("json-boolean");
      case "null":
        return this.primitive("json-null");
      default: {
        const unknown: never = type;
        throw new Error(`unknown type ${String(unknown)}`);
      }
    }
  }

  #ref(ref: unknown, path: string, root: unknown, rootPath: string): string {
    const match = typeof ref === "string" ? /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref) : null;
    if (!match || !isJsonObject(root))
      throw new GrammarUnsupportedError(
        path,
        `only "#/$defs/…" and "#/definitions/…" references are supported`,
      );
    const [, section, rawName] = match;
    const name = rawName!.replaceAll("~1", "/").replaceAll("~0", "~");
    let cache = this.#refs.get(root);
    if (!cache) {
      cache = new Map();
      this.#refs.set(root, cache);
    }
    const known = cache.get(ref as string);
    if (known !== undefined) return known;
    const defs = root[section!];
    if (!isJsonObject(defs) || defs[name] === undefined)
      throw new GrammarUnsupportedError(path, `${ref as string} is not defined`);
    const rule = this.rules.reserve(`ref-${name}`);
    cache.set(ref as string, rule);
    this.rules.define(rule, this.#visit(defs[name], `${rootPath}.${section}.${name}`, root, rootPath));
    return rule;
  }

  #mergeAllOf(schema: Schema, path: string, root: unknown, rootPath: string): Schema {
    if (!Array.isArray(schema.allOf))
      throw new GrammarUnsupportedError(`${path}.allOf`, "allOf must be an array");
    const merged: Schema = { type: "object", properties: {}, required: [] };
    const properties = merged.properties as Schema;
    const required = merged.required as string[];
    // Parts with additionalProperties: false, which each see only their own properties.
    const closed: Array<{ where: string; names: Set<string> }> = [];
    const parts: Array<[unknown, string]> = [
      [{ ...schema, allOf: undefined }, path],
      ...schema.allOf.map((part, i): [unknown, string] => [part, `${path}.allOf.${i}`]),
    ];
    for (let [part, where] of parts) {
      // Follow references to the object schema they name.
      for (let hops = 0; isJsonObject(part) && typeof part.$ref === "string" && hops < 16; hops++) {
        const m = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(part.$ref);
        const defs = m && isJsonObject(root) ? root[m[1]!] : undefined;
        if (!m || !isJsonObject(defs) || defs[m[2]!] === undefined)
          throw new GrammarUnsupportedError(`${where}.$ref`, `${part.$ref} is not defined`);
        where = `${rootPath}.${m[1]}.${m[2]}`;
        part = defs[m[2]!];
      }
      if (!isJsonObject(part))
        throw new GrammarUnsupportedError(where, "allOf is supported for object schemas only");
      for (const key of Object.keys(part)) {
        if (part[key] === undefined || ANNOTATIONS.has(key)) continue;
        if (key === "type") {
          if (part.type !== "object")
            throw new GrammarUnsupportedError(`${where}.type`, "allOf is supported for object schemas only");
        } else if (key === "properties" && isJsonObject(part.properties)) {
          for (const [name, sub] of Object.entries(part.properties)) {
            if (properties[name] !== undefined)
              throw new GrammarUnsupportedError(
                `${where}.properties.${name}`,
                "a property declared by two allOf parts is not supported",
              );
            properties[name] = sub;
          }
        } else if (key === "required" && Array.isArray(part.required)) {
          required.push(...(part.required as string[]));
        } else if (key === "additionalProperties") {
          if (part.additionalProperties !== false)
            throw new GrammarUnsupportedError(
              `${where}.additionalProperties`,
              "only additionalProperties: false is supported inside allOf",
            );
          merged.additionalProperties = false;
          closed.push({
            where,
            names: new Set(isJsonObject(part.properties) ? Object.keys(part.properties) : []),
          });
        } else if (key !== "allOf" && key !== "nullable") {
          throw new GrammarUnsupportedError(`${where}.${key}`, `${key} inside allOf is not supported`);
        }
      }
    }
    for (const { where, names } of closed)
      for (const name of Object.keys(properties))
        if (!names.has(name))
          throw new GrammarUnsupportedError(
            `${where}.additionalProperties`,
            `additionalProperties: false here rejects ${JSON.stringify(name)}, which another allOf part declares`,
          );
    return merged;
  }

  #object(schema: Schema, path: string, root: unknown, rootPath: string): string {
    for (const key of ["items", "prefixItems", "minLength", "maxLength", "pattern", "format"])
      if (schema[key] !== undefined && schema.type === "object")
        throw new GrammarUnsupportedError(`${path}.${key}`, `${key} does not apply to an object`);
    const props = schema.properties ?? {};
    if (!isJsonObject(props))
      throw new GrammarUnsupportedError(`${path}.properties`, "properties must be an object");
    const required = new Set<string>();
    if (schema.required !== undefined) {
      if (!Array.isArray(schema.required))
        throw new GrammarUnsupportedError(`${path}.required`, "required must be an array");
      for (const name of schema.required) {
        if (typeof name !== "string")
          throw new GrammarUnsupportedError(`${path}.required`, "required must list strings");
        required.add(name);
      }
    }
    const extra = schema.additionalProperties;
    for (const name of required)
      if (props[name] === undefined && (extra === false || extra === undefined))
        throw new GrammarUnsupportedError(
          `${path}.required`,
          `${JSON.stringify(name)} is required but not among the properties`,
        );
    const entries: Array<{ kv: string; required: boolean }> = [];
    const ws = this.primitive("ws");
    for (const [name, sub] of Object.entries(props)) {
      const value = this.#visit(sub, `${path}.properties.${name}`, root, rootPath);
      entries.push({
        kv: `${literal(JSON.stringify(name))} ":" ${ws} ${value}`,
        required: required.has(name),
      });
    }
    for (const name of required)
      if (props[name] === undefined) {
        const value = this.#visit(
          extra === true ? true : extra,
          `${path}.additionalProperties`,
          root,
          rootPath,
        );
        entries.push({ kv: `${literal(JSON.stringify(name))} ":" ${ws} ${value}`, required: true });
      }
    let extras: string | undefined;
    if (extra !== undefined && extra !== false) {
      const value = this.#visit(extra, `${path}.additionalProperties`, root, rootPath);
      const key = this.#keyExcept(Object.keys(props).concat([...required]), path);
      extras = this.rules.add(`${path}-extra-kv`, `${key} ":" ${ws} ${value}`);
    }
    const hint = `${path}-object`;
    // rest(i): properties i.. after something was written (each preceded by ","); first(i): nothing written yet.
    const tail = extras === undefined ? '""' : `("," ${ws} ${extras})*`;
    const firstTail = extras === undefined ? '""' : `(${extras} ("," ${ws} ${extras})*)?`;
    let rest = tail;
    let first = firstTail;
    for (let i = entries.length - 1; i >= 0; i--) {
      const { kv, required: req } = entries[i]!;
      const restAfter = rest;
      const restName = this.rules.add(
        `${hint}-rest`,
        req ? `"," ${ws} ${kv} ${restAfter}` : `("," ${ws} ${kv})? ${restAfter}`,
      );
      const firstBody = req ? `${kv} ${restAfter}` : `${kv} ${restAfter} | ${first}`;
      first = this.rules.add(`${hint}-first`, firstBody);
      rest = restName;
    }
    return this.rules.add(hint, `"{" ${first} "}"`);
  }

  /** A JSON string that is none of `names` (so an extra property cannot repeat a declared one). */
  #keyExcept(names: string[], path: string): string {
    const string = this.primitive("json-string");
    if (names.length === 0) return string;
    const char = this.primitive("json-char");
    interface Node {
      children: Map<number, Node>;
      end: boolean;
    }
    const trie: Node = { children: new Map(), end: false };
    for (const name of names) {
      let node = trie;
      for (const ch of name) {
        const cp = ch.codePointAt(0)!;
        let next = node.children.get(cp);
        if (!next) {
          next = { children: new Map(), end: false };
          node.children.set(cp, next);
        }
        node = next;
      }
      node.end = true;
    }
    // Spelling out a declared name's characters raw only misses names that need escapes; those
    // are refused rather than risk a duplicate key.
    for (const name of names)
      if ([...name].some((ch) => ch === '"' || ch === "\\" || ch.charCodeAt(0) < 0x20 || ch === "\x7f"))
        throw new GrammarUnsupportedError(
          `${path}.properties`,
          "property names that need escaping are not supported with additionalProperties",
        );
    const visit = (node: Node): string => {
      const alts: string[] = [];
      const rejects: number[] = [];
      for (const [cp, child] of [...node.children].sort(([a], [b]) => a - b)) {
        rejects.push(cp);
        const ch = `[${classChar(cp)}]`;
        if (child.children.size > 0) alts.push(`${ch} (${visit(child)})${child.end ? "" : "?"}`);
        else alts.push(`${ch} ${char}+`);
      }
      alts.push(`[^"\\\\\\x00-\\x1f\\x7f${rejects.map(classChar).join("")}] ${char}*`);
      return alts.join(" | ");
    };
    return this.rules.add(`${path}-extra-key`, `"\\"" (${visit(trie)})${trie.end ? "" : "?"} "\\""`);
  }

  #array(schema: Schema, path: string, root: unknown, rootPath: string): string {
    const min = this.#count(schema, "minItems", path) ?? 0;
    const max = this.#count(schema, "maxItems", path);
    if (max !== undefined && max < min)
      throw new GrammarUnsupportedError(`${path}.maxItems`, "maxItems is below minItems");
    const ws = this.primitive("ws");
    const prefix = schema.prefixItems;
    const items = schema.items;
    const hint = `${path}-array`;
    if (prefix !== undefined) {
      if (!Array.isArray(prefix))
        throw new GrammarUnsupportedError(`${path}.prefixItems`, "prefixItems must be an array");
      if (prefix.length === 0 && items === undefined) return this.primitive("json-array");
      const fixed = prefix.map((sub, i) => this.#visit(sub, `${path}.prefixItems.${i}`, root, rootPath));
      // Every prefix item is written: a shorter array would be valid too, but this one always is.
      if (max !== undefined && max < fixed.length)
        throw new GrammarUnsupportedError(
          `${path}.maxItems`,
          "maxItems below the number of prefixItems is not supported",
        );
      let body = fixed.join(` "," ${ws} `);
      if (items !== undefined && items !== false) {
        const item = this.#visit(items, `${path}.items`, root, rootPath);
        const more = Math.max(0, min - fixed.length);
        const upTo = max === undefined ? "" : String(max - fixed.length);
        body += ` ("," ${ws} ${item}){${more},${upTo}}`;
      } else if (min > fixed.length) {
        throw new GrammarUnsupportedError(
          `${path}.minItems`,
          "minItems above the number of prefixItems needs items",
        );
      }
      return this.rules.add(hint, `"[" ${body} "]"`);
    }
    if (items === false) {
      if (min > 0)
        throw new GrammarUnsupportedError(`${path}.minItems`, "minItems with items: false allows nothing");
      return '"[]"';
    }
    const item =
      items === undefined
        ? this.primitive("json-value")
        : this.#visit(items, `${path}.items`, root, rootPath);
    if (max === 0) return '"[]"';
    const repeat = `("," ${ws} ${item}){${Math.max(0, min - 1)},${max === undefined ? "" : max - 1}}`;
    const list = `${item} ${repeat}`;
    return this.rules.add(hint, min === 0 ? `"[" (${list})? "]"` : `"[" ${list} "]"`);
  }

  #count(schema: Schema, key: string, path: string): number | undefined {
    const value = schema[key];
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
      throw new GrammarUnsupportedError(`${path}.${key}`, `${key} must be a non-negative integer`);
    return value;
  }

  #string(schema: Schema, path: string): string {
    const min = this.#count(schema, "minLength", path) ?? 0;
    const max = this.#count(schema, "maxLength", path);
    if (max !== undefined && max < min)
      throw new GrammarUnsupportedError(`${path}.maxLength`, "maxLength is below minLength");
    const bounded = schema.minLength !== undefined || schema.maxLength !== undefined;
    if (schema.format !== undefined) {
      if (schema.pattern !== undefined)
        throw new GrammarUnsupportedError(`${path}.pattern`, "pattern together with format is not supported");
      if (bounded)
        throw new GrammarUnsupportedError(
          `${path}.format`,
          "format together with a length bound is not supported",
        );
      const rule = typeof schema.format === "string" ? FORMATS[schema.format] : undefined;
      if (rule === undefined)
        throw new GrammarUnsupportedError(
          `${path}.format`,
          `format ${JSON.stringify(schema.format)} is not supported (supported: ${Object.keys(FORMATS).join(", ")})`,
        );
      for (const used of rule.match(/json-[a-z0-9]+/g) ?? []) this.primitive(used);
      return this.rules.add(`format-${schema.format}`, `"\\"" ${rule} "\\""`);
    }
    if (schema.pattern !== undefined) {
      if (bounded)
        throw new GrammarUnsupportedError(
          `${path}.pattern`,
          "pattern together with minLength/maxLength is not supported",
        );
      if (typeof schema.pattern !== "string")
        throw new GrammarUnsupportedError(`${path}.pattern`, "pattern must be a string");
      return this.rules.add(
        `${path}-pattern`,
        `"\\"" ${regexToGbnf(schema.pattern, `${path}.pattern`)} "\\""`,
      );
    }
    if (!bounded) return this.primitive("json-string");
    const char = this.primitive("json-char");
    return this.rules.add(`string-${min}-${max ?? "n"}`, `"\\"" ${char}{${min},${max ?? ""}} "\\""`);
  }

  #integer(schema: Schema, path: string): string {
    const bound = (key: string): number | undefined => {
      const value = schema[key];
      if (value === undefined) return undefined;
      if (typeof value !== "number" || !Number.isFinite(value))
        throw new GrammarUnsupportedError(`${path}.${key}`, `${key} must be a number`);
      return value;
    };
    let lo = -Infinity;
    let hi = Infinity;
    const minimum = bound("minimum");
    const maximum = bound("maximum");
    const exclusiveMinimum = bound("exclusiveMinimum");
    const exclusiveMaximum = bound("exclusiveMaximum");
    if (minimum !== undefined) lo = Math.max(lo, Math.ceil(minimum));
    if (exclusiveMinimum !== undefined) lo = Math.max(lo, Math.floor(exclusiveMinimum) + 1);
    if (maximum !== undefined) hi = Math.min(hi, Math.floor(maximum));
    if (exclusiveMaximum !== undefined) hi = Math.min(hi, Math.ceil(exclusiveMaximum) - 1);
    if (lo > hi) throw new GrammarUnsupportedError(path, "the integer bounds allow no value");
    const limit = 10 ** MAX_DIGITS - 1;
    if (Math.abs(lo) > limit && lo !== -Infinity)
      throw new GrammarUnsupportedError(`${path}.minimum`, "bound too large");
    if (Math.abs(hi) > limit && hi !== Infinity)
      throw new GrammarUnsupportedError(`${path}.maximum`, "bound too large");
    if (lo === -Infinity && hi === Infinity) return this.primitive("json-int");
    return this.rules.add(`int-${lo}-${hi}`, integerRange(lo, hi));
  }
}

/** GBNF for the decimal integers in [lo, hi] (either end may be infinite), no leading zeros. */
export function integerRange(lo: number, hi: number): string {
  const alts: string[] = [];
  if (lo < 0) {
    // Negative part: "-" then the magnitudes [max(1, -hi), -lo].
    const magLo = hi < 0 ? -hi : 1;
    alts.push(`"-" (${naturalRange(magLo, -lo)})`);
  }
  if (hi >= 0) alts.push(naturalRange(Math.max(0, lo), hi));
  return alts.join(" | ");
}

/** Naturals in [lo, hi], hi possibly Infinity (then at most MAX_DIGITS digits). */
function naturalRange(lo: number, hi: number): string {
  const loText = String(lo);
  const hiDigits = hi === Infinity ? MAX_DIGITS : String(hi).length;
  const alts: string[] = [];
  for (let len = loText.length; len <= hiDigits; len++) {
    const from = len === loText.length ? loText : len === 1 ? "0" : `1${"0".repeat(len - 1)}`;
    if (hi === Infinity && len > loText.length) {
      alts.push(`[1-9] [0-9]{${len - 1},${MAX_DIGITS - 1}}`);
      break;
    }
    const to = hi !== Infinity && len === hiDigits ? String(hi) : "9".repeat(len);
    alts.push(sameLengthRange(from, to));
  }
  return alts.map((a) => `(${a})`).join(" | ");
}

/** Decimal strings of one length from `lo` to `hi` (lo <= hi). */
function sameLengthRange(lo: string, hi: string): string {
  if (lo === hi) return `"${lo}"`;
  if (lo.length === 1) return `[${lo}-${hi}]`;
  const restLen = lo.length - 1;
  const a = Number(lo[0]);
  const b = Number(hi[0]);
  const loRest = lo.slice(1);
  const hiRest = hi.slice(1);
  if (a === b) return `"${a}" (${sameLengthRange(loRest, hiRest)})`;
  const nines = "9".repeat(restLen);
  const zeros = "0".repeat(restLen);
  if (loRest === zeros && hiRest === nines) return `[${a}-${b}] [0-9]{${restLen}}`;
  const alts = [`"${a}" (${sameLengthRange(loRest, nines)})`];
  if (b - a >= 2) alts.push(`[${a + 1}-${b - 1}] [0-9]{${restLen}}`);
  alts.push(`"${b}" (${sameLengthRange(zeros, hiRest)})`);
  return alts.join(" | ");
}

/** A whole grammar whose root is one value valid under `schema`. */
export function jsonSchemaToGbnf(schema: unknown, path: string): string {
  const grammar = new JsonGrammar();
  return grammar.render(grammar.schema(schema, path));
}
