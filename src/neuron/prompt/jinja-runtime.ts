/**
 * Runs a parsed chat template with @huggingface/jinja's interpreter, made
 * to behave like llama.cpp's Jinja engine (and Python's jinja2, which the
 * templates are written for) where the library is stricter than both; each
 * difference was found by tests/integration/template-fidelity.test.ts
 * against llama-server's renders of real templates:
 *
 * - iterating an undefined or none value yields nothing (`{% for tool in
 *   tools %}` with no tools: Hermes, Command R);
 * - the list filters (`length`, `selectattr`, …) see an undefined value as
 *   an empty list (`tools|length`: Apriel);
 * - the string filters (`trim`, …) see an undefined value as "", and `+`
 *   with an undefined value and a string concatenates (Hermes, Command R);
 * - `for a, b in [("x", "y"), …]` unpacks tuples as it does lists
 *   (Functionary);
 * - `list.append(x)`, `list.pop(i)` and `"{}".format(x)`, the `min` and
 *   `max` filters (Kimi K2, Hunyuan, MiniCPM), and `x|string` of a dict or
 *   list as Python prints it (Apriel), which the other string filters
 *   work on too (`content | trim` of a list of parts: Gemma 4);
 * - dicts with integer keys (Seed-OSS; jinja-int-keys.ts).
 *
 * And the globals llama.cpp gives every template: `raise_exception`,
 * `range`, `strftime_now` at the render's `now` (not the wall clock, so a
 * render is reproducible), and `datetime` / `date_string`. A render can
 * watch one value and record what the template does with it (llama.cpp's
 * usage stats, which its capability probes read: content-shape.ts).
 */
import { Environment, Interpreter, type Template } from "@huggingface/jinja";
import { IntKeyedDict, intKeyedDict } from "./jinja-int-keys.ts";

type Parsed = Template["parsed"];
type Value = ReturnType<Interpreter["run"]>;
/** The library's AST nodes, as far as these overrides read them. */
interface Node {
  type: string;
  [field: string]: unknown;
}
type ForNode = Node & { iterable: Node };
type FilterNode = Node;
type BinaryNode = Node & { left: Node; right: Node; operator: { value: string } };
type MemberNode = Node & { object: Node; computed: boolean; property: { value: unknown } };
type TestNode = Node & { operand: Node; test: { value: string } };

/** The interpreter's methods these overrides wrap (private in its typings, plain methods at run time). */
interface InterpreterMethods {
  run(program: Parsed): Value;
  evaluate(statement: Node | undefined, environment: Environment): Value;
  evaluateFor(node: ForNode, environment: Environment): Value;
  evaluateTestExpression(node: TestNode, environment: Environment): Value;
  evaluateBinaryExpression(node: BinaryNode, environment: Environment): Value;
  evaluateMemberExpression(expr: MemberNode, environment: Environment): Value;
  applyFilter(operand: Value, filterNode: FilterNode, environment: Environment): Value;
}
const BaseInterpreter = Interpreter as unknown as new (environment: Environment) => InterpreterMethods;

/** A node standing for a value already evaluated (so an iterable is not evaluated twice). */
const EVALUATED = "CortexEvaluated";

const LIST_FILTERS = new Set([
  "length",
  "count",
  "list",
  "first",
  "last",
  "join",
  "map",
  "select",
  "reject",
  "selectattr",
  "rejectattr",
  "unique",
  "sort",
  "reverse",
]);

const STRING_FILTERS = new Set([
  "trim",
  "string",
  "upper",
  "lower",
  "capitalize",
  "title",
  "replace",
  "striptags",
]);

function evaluated(value: Value): Node {
  return { type: EVALUATED, value } as unknown as Node;
}

type NativeFunction = (args: Value[]) => Value;

/** One value whose uses a render records (llama.cpp's Jinja usage stats, as its capability probes read them). */
export interface Watch {
  /** Picks the value to watch from the render's environment (e.g. the first message's content). */
  pick(environment: Environment): unknown;
  /** What was done with it: `array_access` (iterated, indexed), `test_is_<test>`, filter names. */
  ops: Set<string>;
}

class LlamaCppInterpreter extends BaseInterpreter {
  readonly #watched: unknown;
  readonly #ops: Set<string> | undefined;

  constructor(environment: Environment, watch?: Watch) {
    super(environment);
    this.#watched = watch?.pick(environment);
    this.#ops = watch?.ops;
  }

  #use(value: Value, op: string): void {
    if (this.#watched !== undefined && value === this.#watched) this.#ops?.add(op);
  }

  override evaluateTestExpression(node: TestNode, environment: Environment): Value {
    const operand = this.evaluate(node.operand, environment);
    this.#use(operand, `test_is_${node.test.value}`);
    return super.evaluateTestExpression({ ...node, operand: evaluated(operand) } as TestNode, environment);
  }

  override evaluate(statement: Node | undefined, environment: Environment): Value {
    const type = (statement as { type?: string } | undefined)?.type;
    if (type === EVALUATED) return (statement as unknown as { value: Value }).value;
    if (type === "ObjectLiteral") {
      const literal = (statement as unknown as { value: Map<Node, Node> }).value;
      const entries: Array<[Value, Value]> = [...literal].map(([key, value]) => [
        this.evaluate(key, environment),
        this.evaluate(value, environment),
      ]);
      const ints = intKeyedDict(entries);
      if (ints) return ints as unknown as Value;
      const evaluatedEntries = new Map(entries.map(([key, value]) => [evaluated(key), evaluated(value)]));
      return super.evaluate({ type, value: evaluatedEntries } as unknown as Node, environment);
    }
    return super.evaluate(statement as Node, environment);
  }

  override evaluateBinaryExpression(node: BinaryNode, environment: Environment): Value {
    const op = (node as unknown as { operator: { value: string } }).operator.value;
    if (op === "and" || op === "or") return super.evaluateBinaryExpression(node, environment);
    let left = this.evaluate(node.left, environment);
    let right = this.evaluate(node.right, environment);
    if (op === "+" && left.type === "UndefinedValue" && right.type === "StringValue")
      left = this.#string("", environment);
    if (op === "+" && right.type === "UndefinedValue" && left.type === "StringValue")
      right = this.#string("", environment);
    return super.evaluateBinaryExpression(
      { ...node, left: evaluated(left), right: evaluated(right) } as BinaryNode,
      environment,
    );
  }

  override evaluateMemberExpression(expr: MemberNode, environment: Environment): Value {
    const { computed, property } = expr as unknown as { computed: boolean; property: { value: unknown } };
    const object = this.evaluate(expr.object, environment);
    if ((object as unknown) instanceof IntKeyedDict && computed) {
      const dict = object as unknown as IntKeyedDict;
      const key = this.evaluate(expr.property as unknown as Node, environment);
      // A missing key is undefined (a name no template can spell looks one up).
      if (key.type === "IntegerValue") return dict.lookup(key) ?? environment.lookupVariable(" ");
      return super.evaluateMemberExpression(
        { ...expr, object: evaluated(object), property: evaluated(key) } as unknown as MemberNode,
        environment,
      );
    }
    if (this.#watched !== undefined && object === this.#watched) {
      const key = expr.property as unknown as Node;
      if (computed && key.type !== "SliceExpression") {
        const index = this.evaluate(key, environment);
        this.#use(object, index.type === "IntegerValue" ? "array_access" : "object_access");
        return super.evaluateMemberExpression(
          { ...expr, object: evaluated(object), property: evaluated(index) } as unknown as MemberNode,
          environment,
        );
      }
      if (!computed) this.#use(object, String(property.value));
    }
    const name = computed ? undefined : property.value;
    const method = name === undefined ? undefined : this.#method(object, String(name), environment);
    return (
      method ??
      super.evaluateMemberExpression({ ...expr, object: evaluated(object) } as MemberNode, environment)
    );
  }

  /** The Python list and str methods templates call that the library lacks. */
  #method(object: Value, name: string, environment: Environment): Value | undefined {
    const items = object.value as Value[];
    if (object.type === "ArrayValue" && name === "append")
      return this.#function(environment, ([item]) => {
        if (item) items.push(item);
        return this.#none(environment);
      });
    if (object.type === "ArrayValue" && name === "pop")
      return this.#function(environment, ([index]) => {
        const at = typeof index?.value === "number" ? index.value : items.length - 1;
        const [removed] = items.splice(at < 0 ? items.length + at : at, 1);
        if (removed === undefined) throw new Error("pop from empty list");
        return removed;
      });
    if (object.type === "StringValue" && name === "format")
      return this.#function(environment, (args) => {
        let next = 0;
        const text = String(object.value).replace(/\{(\d*)\}/g, (_, index: string) =>
          String(args[index === "" ? next++ : Number(index)]?.value ?? ""),
        );
        return this.#string(text, environment);
      });
    return undefined;
  }

  override evaluateFor(node: ForNode, environment: Environment): Value {
    const select = node.iterable.type === "SelectExpression";
    const target = select ? (node.iterable as unknown as { lhs: Node }).lhs : (node.iterable as Node);
    let value = this.evaluate(target, new Environment(environment));
    this.#use(value, "array_access");
    if (value.type === "UndefinedValue" || value.type === "NullValue") value = this.#emptyList(environment);
    else if (value.type === "ArrayValue" || value.type === "TupleValue")
      for (const item of value.value as Value[]) if (item.type === "TupleValue") asList(item);
    const iterable = select ? { ...node.iterable, lhs: evaluated(value) } : evaluated(value);
    return super.evaluateFor({ ...node, iterable } as ForNode, environment);
  }

  override applyFilter(operand: Value, filterNode: FilterNode, environment: Environment): Value {
    const callee = filterNode.callee as { value?: unknown } | undefined;
    const name = String((filterNode.type === "Identifier" ? filterNode.value : callee?.value) ?? "");
    this.#use(operand, name);
    const missing = operand.type === "UndefinedValue" || operand.type === "NullValue";
    if (missing && LIST_FILTERS.has(name))
      return super.applyFilter(this.#emptyList(environment), filterNode, environment);
    if (operand.type === "UndefinedValue" && STRING_FILTERS.has(name))
      return super.applyFilter(this.#string("", environment), filterNode, environment);
    if (name === "items" && (operand as unknown) instanceof IntKeyedDict)
      return (operand as unknown as IntKeyedDict).items();
    if (name === "string" && (operand.type === "ObjectValue" || operand.type === "ArrayValue"))
      return this.#string(pythonRepr(operand), environment);
    // The other string filters work on that text too (`content | trim` of a list of parts: Gemma 4).
    if (STRING_FILTERS.has(name) && (operand.type === "ObjectValue" || operand.type === "ArrayValue"))
      return super.applyFilter(this.#string(pythonRepr(operand), environment), filterNode, environment);
    if ((name === "min" || name === "max") && operand.type === "ArrayValue") {
      const items = operand.value as Value[];
      const sign = name === "min" ? 1 : -1;
      return (
        items.reduce<Value | undefined>(
          (best, item) => (best === undefined || sign * compare(item.value, best.value) < 0 ? item : best),
          undefined,
        ) ?? this.#none(environment)
      );
    }
    return super.applyFilter(operand, filterNode, environment);
  }

  #emptyList(environment: Environment): Value {
    return super.evaluate({ type: "ArrayLiteral", value: [] } as unknown as Node, environment);
  }

  #string(text: string, environment: Environment): Value {
    return super.evaluate({ type: "StringLiteral", value: text } as unknown as Node, environment);
  }

  #none(environment: Environment): Value {
    return environment.lookupVariable("none");
  }

  /** A callable value; its class is not exported, so it is taken from the built-in `namespace`. */
  #function(environment: Environment, fn: NativeFunction): Value {
    const FunctionValue = environment.lookupVariable("namespace").constructor as new (
      fn: NativeFunction,
    ) => Value;
    return new FunctionValue(fn);
  }
}

/** Python's `str()` of a dict or list, which is what `x|string` prints in jinja2 and llama.cpp. */
function pythonRepr(value: Value): string {
  switch (value.type) {
    case "ObjectValue":
      return `{${[...(value.value as Map<string | number, Value>)].map(([k, v]) => `${typeof k === "number" ? k : pythonString(k)}: ${pythonRepr(v)}`).join(", ")}}`;
    case "ArrayValue":
    case "TupleValue":
      return `[${(value.value as Value[]).map(pythonRepr).join(", ")}]`;
    case "StringValue":
      return pythonString(String(value.value));
    case "BooleanValue":
      return value.value ? "True" : "False";
    case "NullValue":
    case "UndefinedValue":
      return "None";
    case "FloatValue":
      return Number.isInteger(value.value) ? `${value.value}.0` : String(value.value);
    default:
      return String(value.value);
  }
}

function pythonString(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  const escaped = text
    .replaceAll("\\", "\\\\")
    .replaceAll("\n", "\\n")
    .replaceAll("\r", "\\r")
    .replaceAll("\t", "\\t")
    .replaceAll(quote, `\\${quote}`);
  return `${quote}${escaped}${quote}`;
}

function compare(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

/** A tuple is a list to `for a, b in …` (the library checks the type name). */
function asList(tuple: Value): void {
  Object.defineProperty(tuple, "type", { value: "ArrayValue" });
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTHS_LONG = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const DAYS_LONG = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** C's strftime for the directives templates use, in the C locale, local time (as llama.cpp formats). */
export function strftime(date: Date, format: string): string {
  return format.replace(/%[a-zA-Z%]/g, (token) => {
    switch (token) {
      case "%Y":
        return String(date.getFullYear());
      case "%y":
        return pad2(date.getFullYear() % 100);
      case "%m":
        return pad2(date.getMonth() + 1);
      case "%d":
        return pad2(date.getDate());
      case "%e":
        return String(date.getDate()).padStart(2, " ");
      case "%b":
      case "%h":
        return MONTHS[date.getMonth()] ?? "";
      case "%B":
        return MONTHS_LONG[date.getMonth()] ?? "";
      case "%a":
        return DAYS[date.getDay()] ?? "";
      case "%A":
        return DAYS_LONG[date.getDay()] ?? "";
      case "%H":
        return pad2(date.getHours());
      case "%I":
        return pad2(((date.getHours() + 11) % 12) + 1);
      case "%p":
        return date.getHours() < 12 ? "AM" : "PM";
      case "%M":
        return pad2(date.getMinutes());
      case "%S":
        return pad2(date.getSeconds());
      case "%F":
        return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}`;
      case "%%":
        return "%";
      default:
        return token;
    }
  });
}

function range(...args: number[]): number[] {
  const [start, stop, step] =
    args.length === 1 ? [0, args[0] ?? 0, 1] : [args[0] ?? 0, args[1] ?? 0, args[2] ?? 1];
  if (step === 0) throw new Error("range() step must not be zero");
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/**
 * Renders a parsed template with `context` (plain data) and llama.cpp's
 * globals at `now`; a watch records what the template does with one value.
 */
export function runTemplate(
  parsed: Parsed,
  context: Record<string, unknown>,
  now: Date,
  watch?: Watch,
): string {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    raise_exception: (message: unknown) => {
      throw new TemplateRaised(String(message));
    },
    range,
    strftime_now: (format: unknown) => strftime(now, String(format)),
    // llama.cpp's extra context (common/chat.cpp): firefunction and others print these.
    datetime: strftime(now, "%b %d %Y"),
    date_string: strftime(now, "%d %b %Y"),
  };
  for (const [key, value] of Object.entries({ ...globals, ...context })) env.set(key, value);
  return String(new LlamaCppInterpreter(env, watch).run(parsed).value);
}

/** A template's own `raise_exception(message)`: the message is for the client. */
export class TemplateRaised extends Error {}
