/**
 * Dicts with integer keys (`{0: 0, 512: 128}`), which Python's jinja2 and
 * llama.cpp's engine take and @huggingface/jinja refuses ("Object keys must
 * be strings"): Seed-OSS looks up its thinking budget's reflection interval
 * in one. Such a dict is the library's own ObjectValue whose Map holds the
 * integer keys as numbers, so `d[512]`, `d.get(512)`, `d.items()`,
 * `d|items` and `d|dictsort` (numeric order, as Python sorts ints) see them
 * as integers; string keys in the same dict stay strings.
 */
import { Environment, Interpreter } from "@huggingface/jinja";

type Value = ReturnType<Interpreter["run"]>;
type Key = string | number;
type Make = (value: unknown) => Value;

interface Evaluates {
  evaluate(node: unknown, environment: Environment): Value;
}

/** The library's value classes are not exported: each is taken from a value of its kind. */
const probe = new Interpreter(new Environment()) as unknown as Evaluates;
const probeEnv = new Environment();
const classOf = (node: unknown) =>
  (probe.evaluate(node, probeEnv) as object).constructor as new (
    value: unknown,
  ) => Value;
const ObjectValue = classOf({ type: "ObjectLiteral", value: new Map() }) as new (
  value: Map<Key, Value>,
) => { type: string; value: Map<Key, Value> };
const IntegerValue = classOf({ type: "IntegerLiteral", value: 0 });
const StringValue = classOf({ type: "StringLiteral", value: "" });
const ArrayValue = classOf({ type: "ArrayLiteral", value: [] });
const FunctionValue = (probeEnv.lookupVariable("namespace") as object).constructor as new (
  fn: (args: Value[]) => Value,
) => Value;
const make: Record<string, Make> = {
  integer: (v) => new IntegerValue(v),
  string: (v) => new StringValue(v),
  array: (v) => new ArrayValue(v),
};

function keyValue(key: Key): Value {
  return typeof key === "number" ? (make.integer as Make)(key) : (make.string as Make)(key);
}

/** A dict some of whose keys are integers. */
export class IntKeyedDict extends ObjectValue {
  #builtins: Map<string, Value> | undefined;

  /** Replaces the library's dict methods, which take string keys only. */
  get builtins(): Map<string, Value> {
    this.#builtins ??= new Map([
      [
        "get",
        new FunctionValue(
          ([key, fallback]) => this.lookup(key) ?? fallback ?? probeEnv.lookupVariable("none"),
        ),
      ],
      ["items", new FunctionValue(() => this.items())],
      ["keys", new FunctionValue(() => this.keys())],
      ["values", new FunctionValue(() => (make.array as Make)([...this.value.values()]))],
      ["dictsort", new FunctionValue((args) => this.dictsort(args))],
    ]);
    return this.#builtins;
  }

  /** The value at an integer or string key, or undefined. */
  lookup(key: Value | undefined): Value | undefined {
    if (key?.type === "IntegerValue" || key?.type === "StringValue") return this.value.get(key.value as Key);
    return undefined;
  }

  items(): Value {
    return (make.array as Make)(
      [...this.value].map(([key, value]) => (make.array as Make)([keyValue(key), value])),
    );
  }

  keys(): Value {
    return (make.array as Make)([...this.value.keys()].map(keyValue));
  }

  /** `dictsort(case_sensitive=false, by='key', reverse=false)`, positional or keyword. */
  dictsort(args: Value[]): Value {
    const kwargs = args.find((a) => a.type === "KeywordArgumentsValue")?.value as
      | Map<string, Value>
      | undefined;
    const positional = args.filter((a) => a.type !== "KeywordArgumentsValue");
    const option = (index: number, name: string) => (positional[index] ?? kwargs?.get(name))?.value;
    const caseSensitive = option(0, "case_sensitive") === true;
    const byValue = option(1, "by") === "value";
    const sign = option(2, "reverse") === true ? -1 : 1;
    const sortKey = (entry: [Key, Value]): unknown => {
      const raw = byValue ? entry[1].value : entry[0];
      return typeof raw === "string" && !caseSensitive ? raw.toLowerCase() : raw;
    };
    const entries = [...this.value].sort((a, b) => sign * compare(sortKey(a), sortKey(b)));
    return (make.array as Make)(entries.map(([key, value]) => (make.array as Make)([keyValue(key), value])));
  }
}

/** Python orders ints among themselves and strs among themselves; a mix is a TypeError. */
function compare(a: unknown, b: unknown): number {
  if (typeof a !== typeof b) throw new Error("'<' not supported between int and str keys");
  return (a as number | string) < (b as number | string)
    ? -1
    : (a as number | string) > (b as number | string)
      ? 1
      : 0;
}

/**
 * A dict literal whose evaluated keys include an integer, or undefined
 * when every key is a string (the library's own dict) or a key is neither.
 */
export function intKeyedDict(entries: ReadonlyArray<[Value, Value]>): IntKeyedDict | undefined {
  if (!entries.some(([key]) => key.type === "IntegerValue")) return undefined;
  const map = new Map<Key, Value>();
  for (const [key, value] of entries) {
    if (key.type !== "IntegerValue" && key.type !== "StringValue") return undefined;
    map.set(key.value as Key, value);
  }
  return new IntKeyedDict(map);
}
