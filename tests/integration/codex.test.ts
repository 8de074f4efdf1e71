/**
 * Codex CLI end to end: `codex exec` with a custom provider speaking the
 * Responses API (`wire_api = "responses"`) against the gateway on the tiny
 * model, in a network namespace where only loopback exists where the
 * machine allows one (`unshare -n`, as root), else on loopback only.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { codexBinary, runLoopbackOnly } from "./helpers-dialects/codex.ts";

const binary = codexBinary();
const session = join(import.meta.dir, "helpers-dialects/codex-session.ts");

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
    const { exitCode, stdout, stderr } = await runLoopbackOnly(session, []);
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
