/**
 * Codex CLI end to end: `codex exec` with a custom provider speaking the
 * Responses API (`wire_api = "responses"`) against the gateway on the tiny
 * model, in a network namespace where only loopback exists where the
 * machine allows one (`unshare -n`, as root), else on loopback only.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { codexBinary } from "./helpers-dialects/codex.ts";

const binary = codexBinary();
const session = join(import.meta.dir, "helpers-dialects/codex-session.ts");

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

interface SessionResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  requests: Array<{
    method: string;
    path: string;
    status: number;
    streamed: boolean;
    body?: Record<string, unknown>;
  }>;
}

describe.skipIf(binary === undefined)("Codex CLI", () => {
  test("codex exec answers through POST /v1/responses and exits 0", async () => {
    const flags = loopbackOnlyNamespace();
    if (flags === undefined)
      console.warn("codex test: no network namespace here (unshare); on loopback only");
    const command = flags
      ? ["unshare", flags, "sh", "-c", 'ip link set lo up && exec "$0" "$1"', process.execPath, session]
      : [process.execPath, session];
    const proc = Bun.spawn(command, { stdout: "pipe", stderr: "pipe", env: process.env });
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    if (exitCode !== 0) throw new Error(`codex session failed (${exitCode}): ${stderr}`);
    const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as SessionResult;
    if (result.exitCode !== 0) throw new Error(`codex exited ${result.exitCode}: ${result.stderr}`);
    expect(result.exitCode).toBe(0);
    const turns = result.requests.filter((r) => r.method === "POST" && r.path === "/v1/responses");
    expect(turns.length).toBeGreaterThan(0);
    expect(turns.every((turn) => turn.status === 200 && turn.streamed)).toBe(true);
    expect(turns[0]?.body).toMatchObject({ model: "cortex-tiny", stream: true });
    // What the model said is what Codex printed as its last message.
    expect(result.stdout.trim().length).toBeGreaterThan(0);
  });
});
