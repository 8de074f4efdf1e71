/**
 * Logging through consola: text for terminals, one JSON object per line for
 * journald and log shippers. Request-scoped loggers carry the request id in
 * every line (`withTag` in text, a `request_id` field in JSON).
 */
import { type ConsolaInstance, type ConsolaReporter, consola, LogLevels, type LogObject } from "consola";
import type { LogFormat, LogLevel } from "./config/config-schema.ts";

const LEVEL_NUMBERS: Record<LogLevel, number> = {
  silent: LogLevels.silent,
  fatal: LogLevels.fatal,
  error: LogLevels.error,
  warn: LogLevels.warn,
  info: LogLevels.info,
  debug: LogLevels.debug,
  trace: LogLevels.trace,
};

const LEVEL_NAMES: Record<number, string> = {
  0: "error",
  1: "warn",
  2: "info",
  3: "info",
  4: "debug",
  5: "trace",
};

/** Writes each log call as one JSON line: {time, level, tag, msg, ...fields}. */
export function jsonReporter(
  write: (line: string) => void = (line) => process.stderr.write(line),
): ConsolaReporter {
  return {
    log(logObj: LogObject) {
      const fields: Record<string, unknown> = {};
      const parts: string[] = [];
      for (const arg of logObj.args) {
        if (arg instanceof Error) {
          parts.push(arg.message);
          fields.error = { name: arg.name, message: arg.message, stack: arg.stack };
        } else if (typeof arg === "object" && arg !== null && !Array.isArray(arg)) Object.assign(fields, arg);
        else parts.push(String(arg));
      }
      const line = {
        time: logObj.date.toISOString(),
        level: logObj.type === "fatal" ? "fatal" : (LEVEL_NAMES[logObj.level] ?? "info"),
        ...(logObj.tag ? { tag: logObj.tag } : {}),
        msg: parts.join(" "),
        ...fields,
      };
      write(`${JSON.stringify(line)}\n`);
    },
  };
}

// The global consola instance, so modules that import `consola` directly
// follow the configured level and format too.
const root: ConsolaInstance = consola;

let currentFormat: LogFormat = "text";

// consola copies level, reporters and format options into each tagged child
// when it is made, and modules make theirs at import time, before the CLI has
// read the config: keep them so configureLogging can reach them too.
const tagged = new Map<string, ConsolaInstance>();

export function configureLogging(options: {
  level: LogLevel;
  format: LogFormat;
  /** Where JSON lines go (default stderr); tests capture them here. */
  write?: (line: string) => void;
}): ConsolaInstance {
  currentFormat = options.format;
  root.level = LEVEL_NUMBERS[options.level];
  if (options.format === "json") root.setReporters([jsonReporter(options.write)]);
  root.options.formatOptions = {
    ...root.options.formatOptions,
    date: true,
    colors: process.stderr.isTTY === true,
    compact: true,
  };
  for (const child of tagged.values()) inheritRoot(child);
  return root;
}

function inheritRoot(child: ConsolaInstance): void {
  child.level = root.level;
  child.setReporters(root.options.reporters);
  child.options.formatOptions = root.options.formatOptions;
}

/** The configured line format (native code that writes its own last lines follows it). */
export function logFormat(): LogFormat {
  return currentFormat;
}

/** The process-wide logger, tagged for a component (`gateway`, `neuron`, `poller`, …). */
export function logger(tag?: string): ConsolaInstance {
  if (tag === undefined) return root;
  let child = tagged.get(tag);
  if (child === undefined) {
    child = root.withTag(tag);
    tagged.set(tag, child);
  }
  return child;
}

export type FieldValue = string | number | boolean | undefined;

/**
 * A value quoted (JSON-escaped) in a text line: spaces, quotes, `=` and control
 * characters, so a client's string cannot forge a field or a line of its own.
 */
const NEEDS_QUOTES = /[\s"\\=\p{Cc}\u2028\u2029]|^$/u;

/** Whether `log` writes lines at `level` (check before building costly fields). */
export function logEnabled(log: ConsolaInstance, level: "info" | "warn" | "error" | "debug"): boolean {
  return log.level >= LogLevels[level];
}

/**
 * One structured line: `msg key=value …` in text, `{msg, key: value, …}` in
 * JSON, so request logs are greppable in a terminal and queryable in a shipper.
 */
export function logFields(
  log: ConsolaInstance,
  level: "info" | "warn" | "error" | "debug",
  message: string,
  fields: Record<string, FieldValue>,
): void {
  // consola would drop the line anyway, after the fields and text were built.
  if (!logEnabled(log, level)) return;
  const defined = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
  if (currentFormat === "json") {
    log[level](message, defined);
    return;
  }
  const text = Object.entries(defined)
    .map(
      ([key, value]) =>
        `${key}=${typeof value === "string" && NEEDS_QUOTES.test(value) ? JSON.stringify(value) : value}`,
    )
    .join(" ");
  log[level](`${message} ${text}`);
}
