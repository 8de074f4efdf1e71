/**
 * Records the `/v1/messages` requests of a real two-turn Claude Code
 * session (`claude -p`, then `claude -p --continue` in the same HOME)
 * against a gateway on loopback, scrubbed (scrub-request.ts) except for the
 * `system` block that carries the billing header, whose exact shape is what
 * the fixture is for. Writes tests/integration/__fixtures__/claude-code-session/.
 *
 *   bun tests/integration/helpers-dialects/record-claude-session.ts
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { claudeCodeBinary } from "./claude-code.ts";
import { startRecordingProxy } from "./recording-proxy.ts";
import { scrubRequest } from "./scrub-request.ts";
import { startTestGateway, TINY_ID } from "./test-gateway.ts";

function sansMaxTokens(body: Record<string, unknown>): Record<string, unknown> {
  const { max_tokens: _, ...rest } = body;
  return rest;
}

const OUT = join(import.meta.dir, "..", "__fixtures__", "claude-code-session");
const binary = claudeCodeBinary();
if (!binary) throw new Error("the Claude Code binary is not installed");
const gateway = await startTestGateway({ models: [{ id: TINY_ID, contextSize: 65536 }] });
const proxy = startRecordingProxy(gateway.url);
const home = mkdtempSync(join(tmpdir(), "cortex-claude-session-"));
try {
  for (const args of [
    ["-p", "List the files here."],
    ["-p", "--continue", "Now count them."],
  ]) {
    const proc = Bun.spawn([binary, ...args, "--model", TINY_ID], {
      cwd: home,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: home,
        XDG_CONFIG_HOME: join(home, ".config"),
        ANTHROPIC_BASE_URL: proxy.url,
        ANTHROPIC_API_KEY: "sk-test",
        ANTHROPIC_MODEL: TINY_ID,
        ANTHROPIC_SMALL_FAST_MODEL: TINY_ID,
        DISABLE_TELEMETRY: "1",
        DISABLE_AUTOUPDATER: "1",
        DISABLE_ERROR_REPORTING: "1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
        CI: "1",
      },
    });
    await proc.exited;
  }
  const turns = proxy.exchanges
    .filter(
      (e) => e.method === "POST" && e.path.startsWith("/v1/messages") && !e.path.includes("count_tokens"),
    )
    .map((e) => JSON.parse(e.body) as Record<string, unknown>)
    .filter((body) => Array.isArray(body.tools) && body.tools.length > 0)
    // A turn whose max_tokens does not fit the context is sent again with a smaller one; keep one per turn.
    .filter(
      (body, i, all) =>
        i === 0 || JSON.stringify(sansMaxTokens(body)) !== JSON.stringify(sansMaxTokens(all[i - 1]!)),
    );
  mkdirSync(OUT, { recursive: true });
  turns.forEach((body, i) => {
    const system = body.system;
    const scrubbed = scrubRequest(body) as Record<string, unknown>;
    // The billing block is kept verbatim (it holds no secret: a version, an entry point and a hash).
    if (Array.isArray(system) && Array.isArray(scrubbed.system))
      scrubbed.system = scrubbed.system.map((block, b) => {
        const original = system[b] as { text?: string };
        return original.text?.startsWith("x-anthropic-billing-header:") ? original : block;
      });
    writeFileSync(join(OUT, `turn-${i + 1}.json`), `${JSON.stringify(scrubbed, null, 1)}\n`);
  });
  console.log(`wrote ${turns.length} request(s) to ${OUT}`);
} finally {
  proxy.stop();
  await gateway.stop();
  rmSync(home, { recursive: true, force: true });
}
