/**
 * Reads, validates and freezes the configuration: parse TOML, apply env
 * overrides, validate with zod, cross-check, derive. Each step is a small
 * function; every problem becomes a ConfigError line naming file and key.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import type { z } from "zod";
import { ConfigError, describeValue, formatKeyPath } from "./config-error.ts";
import { ConfigFile, type ModelProfile, ModelsFile } from "./config-schema.ts";
import { applyEnvOverrides } from "./env-overrides.ts";
import { type ListenAddress, parseListen } from "./parse-listen.ts";

export interface LoadedConfig {
  /** The file read, or undefined when running on defaults. */
  readonly path: string | undefined;
  readonly file: Readonly<ConfigFile>;
  readonly models: readonly ModelProfile[];
  readonly gatewayListen: ListenAddress;
  readonly metricsListen: ListenAddress;
  readonly neuronListen: ListenAddress;
  /** Which key paths (`gateway.listen`) came from which environment variable, for error lines. */
  readonly envSources: ReadonlyMap<string, string>;
}

export interface LoadConfigOptions {
  /** Explicit path (`--config`); otherwise CORTEX_CONFIG, then ./cortex.toml if present. */
  path?: string | undefined;
  env?: Record<string, string | undefined>;
  cwd?: string;
}

export function resolveConfigPath(options: LoadConfigOptions): string | undefined {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const explicit = options.path ?? env.CORTEX_CONFIG;
  if (explicit !== undefined && explicit !== "") return resolve(cwd, explicit);
  const fallback = resolve(cwd, "cortex.toml");
  return existsSync(fallback) ? fallback : undefined;
}

export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const path = resolveConfigPath(options);
  const label = path === undefined ? "(defaults)" : basename(path);
  const raw = path === undefined ? {} : readToml(path, label);
  const { table, sources } = applyEnvOverrides(raw, env);
  const file = validate(ConfigFile, table, label, sources);
  let models = file.models;
  if (file.gateway.models_file !== undefined) {
    const modelsPath = resolveRelative(path, file.gateway.models_file);
    if (!existsSync(modelsPath))
      throw new ConfigError([
        `${label}: gateway.models_file: expected an existing file, got ${JSON.stringify(modelsPath)}`,
      ]);
    const modelsLabel = basename(modelsPath);
    const extra = validate(ModelsFile, readToml(modelsPath, modelsLabel), modelsLabel, new Map());
    models = [...models, ...extra.models];
  }
  crossCheck(file, models, label);
  return deepFreeze({
    path,
    file,
    models,
    gatewayListen: parseListen(file.gateway.listen)!,
    metricsListen: parseListen(file.gateway.metrics_listen)!,
    neuronListen: parseListen(file.neuron.listen)!,
    envSources: sources,
  });
}

function resolveRelative(configPath: string | undefined, target: string): string {
  if (isAbsolute(target)) return target;
  return resolve(configPath === undefined ? process.cwd() : dirname(configPath), target);
}

function readToml(path: string, label: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const reason = error instanceof Error && "code" in error ? String(error.code) : String(error);
    throw new ConfigError([`${path}: cannot read config file (${reason})`]);
  }
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof TomlError) {
      const firstLine = error.message.split("\n")[0] ?? error.message;
      throw new ConfigError([`${label}:${error.line}:${error.column}: invalid TOML: ${firstLine}`]);
    }
    throw error;
  }
}

function validate<S extends z.ZodType>(
  schema: S,
  table: Record<string, unknown>,
  label: string,
  envSources: Map<string, string>,
): z.infer<S> {
  const result = schema.safeParse(table, { reportInput: true });
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((issue) => {
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
    return keys.map((key) => {
      const path = key === undefined ? issue.path : [...issue.path, key];
      const keyPath = formatKeyPath(path);
      const envName = envSources.get(keyPath) ?? envSources.get(keyPath.replace(/\[\d+\]$/, ""));
      const where =
        envName === undefined ? `${label}: ${keyPath || "(top level)"}` : `environment ${envName}`;
      return `${where}: ${describeIssue(issue, key)}`;
    });
  });
  throw new ConfigError(problems);
}

function describeIssue(issue: z.core.$ZodIssue, key: string | undefined): string {
  const got = `got ${describeValue(issue.input)}`;
  switch (issue.code) {
    case "unrecognized_keys":
      return `unknown key ${JSON.stringify(key)} (check the spelling; every key is documented in cortex.example.toml)`;
    case "invalid_value": {
      const values = issue.values.map((value) => JSON.stringify(value));
      const expected =
        values.length <= 2 ? values.join(" or ") : `${values.slice(0, -1).join(", ")} or ${values.at(-1)}`;
      return `expected ${expected}, ${got}`;
    }
    case "invalid_type":
      return `expected ${article(issue.expected)}, ${got}`;
    case "too_small":
      return issue.origin === "array" || issue.origin === "string"
        ? `expected at least ${issue.minimum} ${issue.origin === "array" ? "items" : "characters"}, ${got}`
        : `expected a number ${issue.inclusive ? ">=" : ">"} ${issue.minimum}, ${got}`;
    case "too_big":
      return `expected a number ${issue.inclusive ? "<=" : "<"} ${issue.maximum}, ${got}`;
    case "invalid_union":
      return `expected ${unionExpectation(issue)}, ${got}`;
    default:
      return issue.message.startsWith("expected") ? `${issue.message}, ${got}` : `${issue.message} (${got})`;
  }
}

function unionExpectation(issue: z.core.$ZodIssueInvalidUnion): string {
  const options = issue.errors.map((errors) => {
    const first = errors[0];
    if (first === undefined) return "a value";
    if (first.code === "invalid_type") return article(first.expected);
    if (first.code === "invalid_value")
      return first.values.map((value) => JSON.stringify(value)).join(" or ");
    return first.message;
  });
  return [...new Set(options)].join(" or ");
}

function article(type: string): string {
  if (type === "array") return "an array";
  if (type === "object") return "a table";
  if (type === "int") return "an integer";
  return `a ${type}`;
}

function crossCheck(file: ConfigFile, models: readonly ModelProfile[], label: string): void {
  const problems: string[] = [];
  const neuronNames = new Set<string>();
  file.neurons.forEach((neuron, index) => {
    if (neuronNames.has(neuron.name))
      problems.push(
        `${label}: neurons[${index}].name: expected a unique name, got ${JSON.stringify(neuron.name)} twice`,
      );
    neuronNames.add(neuron.name);
  });
  const ids = new Map<string, string>();
  models.forEach((model, index) => {
    for (const [key, name] of [
      ["id", model.id],
      ...model.aliases.map((alias, i) => [`aliases[${i}]`, alias]),
    ]) {
      const previous = ids.get(name as string);
      if (previous !== undefined)
        problems.push(
          `${label}: models[${index}].${key}: expected a unique model id or alias, got ${JSON.stringify(name)} (also used by ${previous})`,
        );
      else ids.set(name as string, `models[${index}]`);
    }
    if (model.file === undefined && model.source === undefined)
      problems.push(
        `${label}: models[${index}].file: expected the GGUF file to load (or a source to pull it from, like "hf:org/repo:Q4_K_M")`,
      );
    // With discovery, node names come from the neurons themselves: nothing to check them against.
    if (file.neurons.length > 0 && file.discovery.dns === undefined) {
      model.affinity.forEach((name, i) => {
        if (!neuronNames.has(name))
          problems.push(
            `${label}: models[${index}].affinity[${i}]: expected the name of a configured neuron (${[...neuronNames].join(", ")}), got ${JSON.stringify(name)}`,
          );
      });
      for (const name of Object.keys(model.files)) {
        if (!neuronNames.has(name))
          problems.push(
            `${label}: models[${index}].files.${name}: expected the name of a configured neuron, got ${JSON.stringify(name)}`,
          );
      }
    }
  });
  if (file.responses.store === "redis" && file.state.redis_url === undefined)
    problems.push(`${label}: responses.store: "redis" needs state.redis_url (the Redis the gateways share)`);
  if (problems.length > 0) throw new ConfigError(problems);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
