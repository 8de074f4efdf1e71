/**
 * Runs the Codex CLI (`codex exec`, its native binary from the
 * `@openai/codex` dev dependency's platform package) against a base URL
 * with a custom provider speaking the Responses API, fenced off from the
 * user's own settings by a temp CODEX_HOME and HOME.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** The binary's path, or undefined where the platform package is not installed (another OS or CPU). */
export function codexBinary(): string | undefined {
  try {
    const manifest = createRequire(import.meta.url).resolve("@openai/codex-linux-x64/package.json");
    const binary = join(dirname(manifest), "vendor/x86_64-unknown-linux-musl/bin/codex");
    return existsSync(binary) ? binary : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The provider as a user would configure it (docs/GATEWAY.md). Codex's web
 * search and sub-agent tools are hosted or grouped tool types the gateway
 * refuses with a 400 (it cannot run them), so they are turned off.
 */
export function codexConfig(baseUrl: string, model: string): string {
  return [
    `model = ${JSON.stringify(model)}`,
    'model_provider = "cortex"',
    'web_search = "disabled"',
    "[agents]",
    "enabled = false",
    "[features]",
    "multi_agent = false",
    "goals = false",
    "[analytics]",
    "enabled = false",
    "[model_providers.cortex]",
    'name = "cortex"',
    `base_url = ${JSON.stringify(`${baseUrl}/v1`)}`,
    'env_key = "CORTEX_API_KEY"',
    'wire_api = "responses"',
    "",
  ].join("\n");
}

/**
 * The `unshare` flags that give a child a network namespace of its own with
 * loopback up: `-n` as root, `-rn` (a user namespace too) for a user where
 * the kernel allows it; undefined where neither works.
 */
function loopbackOnlyNamespace(): string | undefined {
  for (const flags of ["-n", "-rn"]) {
    const probe = Bun.spawnSync(["unshare", flags, "ip", "link", "set", "lo", "up"], {
      stdout: "ignore",
      stderr: "ignore",
    });
    if (probe.success) return flags;
  }
  return undefined;
}

/**
 * Runs a Bun script in a network namespace where only loopback exists, so
 * that nothing the Codex it starts does can reach beyond this machine; on
 * loopback only (with a warning) where the machine allows no namespace.
 */
export async function runLoopbackOnly(script: string, args: string[]): Promise<CodexRun> {
  const flags = loopbackOnlyNamespace();
  if (flags === undefined) console.warn("codex test: no network namespace here (unshare); on loopback only");
  const command = flags
    ? ["unshare", flags, "sh", "-c", 'ip link set lo up && exec "$0" "$@"', process.execPath, script, ...args]
    : [process.execPath, script, ...args];
  const proc = Bun.spawn(command, { stdout: "pipe", stderr: "pipe", env: process.env });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { exitCode, stdout, stderr };
}

export interface CodexRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export async function runCodex(options: {
  binary: string;
  baseUrl: string;
  apiKey: string;
  model: string;
  prompt: string;
  /** A HOME kept between runs (the caller removes it; its `work` folder is the cwd), so `resume` finds the session. */
  home?: string;
  /** Continue the most recent session in this HOME (`codex exec resume --last`) instead of starting one. */
  resume?: boolean;
  /** More `codex exec` arguments (`-c key=value`, `--disable`, `--output-schema`), e.g. to shrink what it sends a small model. */
  args?: string[];
}): Promise<CodexRun> {
  const home = options.home ?? mkdtempSync(join(tmpdir(), "cortex-codex-home-"));
  const work = join(home, "work");
  const codexHome = join(home, ".codex");
  for (const dir of [work, codexHome]) Bun.spawnSync(["mkdir", "-p", dir]);
  writeFileSync(join(codexHome, "config.toml"), codexConfig(options.baseUrl, options.model));
  // `exec resume` takes no --sandbox flag: the same policy as a config override.
  const mode = options.resume
    ? ["resume", "--last", "-c", 'sandbox_mode="read-only"']
    : ["--sandbox", "read-only"];
  const proc = Bun.spawn(
    [options.binary, "exec", ...mode, ...(options.args ?? []), "--skip-git-repo-check", options.prompt],
    {
      cwd: work,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: home,
        CODEX_HOME: codexHome,
        CORTEX_API_KEY: options.apiKey,
        RUST_LOG: "error",
      },
    },
  );
  try {
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { exitCode, stdout, stderr };
  } finally {
    if (options.home === undefined) rmSync(home, { recursive: true, force: true });
  }
}

/**
 * What makes `codex exec` fit a small local model, all of it the CLI's own
 * options (docs/CLIENTS.md shows the same): its ~14 KB of base instructions
 * replaced by a file of one line, no permissions, environment, apps or
 * skills sections, and none of its tools; its first request drops from
 * ~26 KB to ~2 KB. Codex sends no temperature and no output limit, so
 * `--output-schema` with a bounded string is what makes a sampled answer end:
 * the gateway holds the model to the schema's grammar.
 */
export function smallModelCodexArgs(instructionsFile: string, schemaFile: string): string[] {
  return [
    "-c",
    `model_instructions_file=${JSON.stringify(instructionsFile)}`,
    "-c",
    "include_permissions_instructions=false",
    "-c",
    "include_environment_context=false",
    "-c",
    "include_apps_instructions=false",
    "-c",
    "skills.include_instructions=false",
    "-c",
    "tools.experimental_request_user_input.enabled=false",
    "-c",
    "tools.update_plan.enabled=false",
    ...[
      "shell_tool",
      "unified_exec",
      "view_image",
      "apps",
      "plugins",
      "skill_search",
      "tool_suggest",
      "image_generation",
    ].flatMap((feature) => ["--disable", feature]),
    "--output-schema",
    schemaFile,
  ];
}
