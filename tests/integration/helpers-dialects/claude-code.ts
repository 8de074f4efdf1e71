/**
 * Runs the Claude Code CLI (its native binary from the
 * `@anthropic-ai/claude-code-linux-x64` package, a dev dependency of its own:
 * the `@anthropic-ai/claude-code` wrapper wants Node 22 and adds nothing we
 * run) in print mode against a base URL, fenced off from the internet and
 * from the user's own settings by a temp HOME.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** The binary's path, or undefined where the package is not installed (another OS or CPU). */
export function claudeCodeBinary(): string | undefined {
  try {
    const manifest = createRequire(import.meta.url).resolve(
      "@anthropic-ai/claude-code-linux-x64/package.json",
    );
    const binary = join(dirname(manifest), "claude");
    return existsSync(binary) ? binary : undefined;
  } catch {
    return undefined;
  }
}

export interface ClaudeRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

export interface ClaudeRunOptions {
  binary: string;
  baseUrl: string;
  apiKey: string;
  model: string;
  prompt: string;
  timeoutMs: number;
  /** A HOME kept between runs (the caller removes it), so `--continue` finds the last session. */
  home?: string;
  /** Arguments before `-p`, e.g. `--continue`. */
  args?: string[];
  /** More environment, e.g. CLAUDE_CODE_MAX_OUTPUT_TOKENS. */
  env?: Record<string, string>;
}

export async function runClaudeCode(options: ClaudeRunOptions): Promise<ClaudeRun> {
  const home = options.home ?? mkdtempSync(join(tmpdir(), "cortex-claude-home-"));
  const started = performance.now();
  const proc = Bun.spawn(
    [options.binary, ...(options.args ?? []), "-p", options.prompt, "--model", options.model],
    {
      cwd: home,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: home,
        XDG_CONFIG_HOME: join(home, ".config"),
        ANTHROPIC_BASE_URL: options.baseUrl,
        ANTHROPIC_API_KEY: options.apiKey,
        ANTHROPIC_MODEL: options.model,
        ANTHROPIC_SMALL_FAST_MODEL: options.model,
        ANTHROPIC_DEFAULT_HAIKU_MODEL: options.model,
        ANTHROPIC_DEFAULT_SONNET_MODEL: options.model,
        ANTHROPIC_DEFAULT_OPUS_MODEL: options.model,
        // Nothing but the API call may leave the machine: no telemetry, updates, error reports, surveys.
        DISABLE_TELEMETRY: "1",
        DISABLE_AUTOUPDATER: "1",
        DISABLE_ERROR_REPORTING: "1",
        DISABLE_BUG_COMMAND: "1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
        CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY: "1",
        CLAUDE_CODE_DISABLE_TERMINAL_TITLE: "1",
        CI: "1",
        ...options.env,
      },
    },
  );
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill();
  }, options.timeoutMs);
  try {
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { exitCode, stdout, stderr, timedOut, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
    if (options.home === undefined) rmSync(home, { recursive: true, force: true });
  }
}

/**
 * What makes `claude -p` fit a small local model, all of it the CLI's own
 * options (docs/CLIENTS.md shows the same): a one-line system prompt instead
 * of its ~16 KB one, no built-in tools (their ~30 KB of schemas), no MCP
 * servers, hooks, CLAUDE.md or slash commands. Its first request drops from
 * ~48 KB to under 1 KB.
 */
export const SMALL_MODEL_CLAUDE_ARGS = [
  "--bare",
  "--system-prompt",
  "You are a helpful assistant.",
  "--tools",
  "",
  "--strict-mcp-config",
  "--disable-slash-commands",
];

/**
 * Its environment for a small model: greedy sampling (it sends no
 * temperature of its own to a model it does not know, so the gateway would
 * sample), a bound on each answer instead of 32000 tokens that the context
 * clamp would let a rambling model fill, and no thinking request.
 */
export const SMALL_MODEL_CLAUDE_ENV = {
  CLAUDE_CODE_EXTRA_BODY: JSON.stringify({ temperature: 0 }),
  CLAUDE_CODE_MAX_OUTPUT_TOKENS: "128",
  CLAUDE_CODE_DISABLE_THINKING: "1",
};
