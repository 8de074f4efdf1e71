/**
 * citty's runMain, with exit codes that mean something: 2 for usage and
 * config errors, 1 for runtime failures, the command's own code otherwise.
 */
import { type CommandDef, renderUsage, runCommand } from "citty";
import { ConfigError } from "../core/config/config-error.ts";
import { CortexError } from "../core/errors.ts";
import { EXIT, ExitError } from "./exit-codes.ts";

// biome-ignore lint/suspicious/noExplicitAny: citty types subcommands as CommandDef<any>
type AnyCommand = CommandDef<any>;

export async function runCli(main: AnyCommand, rawArgs: string[], version: string): Promise<number> {
  if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
    process.stdout.write(`${version}\n`);
    return EXIT.ok;
  }
  if (rawArgs.includes("--help") || rawArgs.includes("-h")) {
    const [command, parent] = await resolveSubCommand(main, rawArgs);
    process.stdout.write(`${await renderUsage(command, parent)}\n`);
    return EXIT.ok;
  }
  try {
    const { result } = await runCommand(main, { rawArgs });
    return typeof result === "number" ? result : EXIT.ok;
  } catch (error) {
    return reportError(error, main, rawArgs);
  }
}

async function reportError(error: unknown, main: AnyCommand, rawArgs: string[]): Promise<number> {
  if (error instanceof ConfigError) {
    for (const line of error.problems) process.stderr.write(`error: ${line}\n`);
    return EXIT.usage;
  }
  if (error instanceof ExitError) {
    process.stderr.write(`error: ${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof CortexError) {
    process.stderr.write(`error: ${error.message}\n`);
    return EXIT.failure;
  }
  // citty throws CLIError for unknown commands and missing arguments.
  if (error instanceof Error && error.name === "CLIError") {
    const [command, parent] = await resolveSubCommand(main, rawArgs);
    process.stderr.write(`${await renderUsage(command, parent)}\n\nerror: ${error.message}\n`);
    return EXIT.usage;
  }
  process.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT.failure;
}

async function resolveSubCommand(
  command: AnyCommand,
  rawArgs: string[],
  parent?: AnyCommand,
): Promise<[AnyCommand, AnyCommand | undefined]> {
  const subCommands =
    typeof command.subCommands === "function" ? await command.subCommands() : await command.subCommands;
  if (subCommands) {
    const index = rawArgs.findIndex((arg) => !arg.startsWith("-"));
    const name = index >= 0 ? rawArgs[index] : undefined;
    const sub = name === undefined ? undefined : subCommands[name];
    if (sub !== undefined) {
      const resolved = typeof sub === "function" ? await sub() : await sub;
      return resolveSubCommand(resolved, rawArgs.slice(index + 1), command);
    }
  }
  return [command, parent];
}
