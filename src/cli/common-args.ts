import type { ArgsDef } from "citty";
import { ConfigError } from "../core/config/config-error.ts";
import { exposureProblem, type ServerRole } from "../core/config/exposure.ts";
import { type LoadedConfig, loadConfig } from "../core/config/load-config.ts";
import { configureLogging } from "../core/logger.ts";

export const logArgs = {
  "log-level": {
    type: "string",
    description: "silent | error | warn | info | debug | trace (env CORTEX_LOG_LEVEL)",
    valueHint: "level",
  },
  "log-format": { type: "string", description: "text | json (env CORTEX_LOG_FORMAT)", valueHint: "format" },
} as const satisfies ArgsDef;

export const configArg = {
  config: {
    type: "string",
    alias: "c",
    description: "Config file (default: $CORTEX_CONFIG, then ./cortex.toml)",
    valueHint: "path",
  },
} as const satisfies ArgsDef;

/** A command-line flag that overrides a config key through its environment variable. */
export interface FlagOverride {
  flag: string;
  env: string;
  value: string | undefined;
}

/**
 * Loads the config with command-line flags taking precedence over the
 * environment, which takes precedence over the file; then sets up logging.
 * Flags go through the same validation as the file, and their errors name the flag.
 * With a `role`, a server that would listen beyond loopback with no credential
 * is refused too (exposure.ts).
 */
export function loadConfigAndLogging(
  args: { config?: string | undefined; "log-level"?: string | undefined; "log-format"?: string | undefined },
  flags: readonly FlagOverride[] = [],
  role?: ServerRole,
): LoadedConfig {
  const all: FlagOverride[] = [
    { flag: "--log-level", env: "CORTEX_LOG_LEVEL", value: args["log-level"] },
    { flag: "--log-format", env: "CORTEX_LOG_FORMAT", value: args["log-format"] },
    ...flags,
  ];
  const env: Record<string, string | undefined> = { ...process.env };
  for (const flag of all) if (flag.value !== undefined) env[flag.env] = flag.value;
  let config: LoadedConfig;
  try {
    config = loadConfig({ path: args.config, env });
    const exposed = role === undefined ? undefined : exposureProblem(config, role);
    if (exposed !== undefined) throw new ConfigError([exposed]);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(
      error.problems.map((line) => {
        for (const flag of all)
          if (flag.value !== undefined) line = line.replace(`environment ${flag.env}:`, `${flag.flag}:`);
        return line;
      }),
    );
  }
  configureLogging({ level: config.file.log.level, format: config.file.log.format });
  return config;
}
