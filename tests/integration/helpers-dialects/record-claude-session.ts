/**
 * Records the `/v1/messages` requests of a real two-turn Claude Code
 * session (`claude -p`, then `claude -p --continue` in the same HOME)
 * against a gateway on loopback, scrubbed (scrub-request.ts) except for the
 * `system` block that carries the billing header, whose exact shape is what
 * the fixture is for. Writes tests/integration/__fixtures__/claude-code-session/.
 *
 *   bun tests/integration/helpers-dialects/record-claude-session.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { claudeCodeBinary, runClaudeCode } from "./claude-code.ts";
import { startRecordingProxy } from "./recording-proxy.ts";
import { conversationBodies, writeSessionFixtures } from "./session-fixtures.ts";
import { startTestGateway, TINY_ID } from "./test-gateway.ts";

const OUT = join(import.meta.dir, "..", "__fixtures__", "claude-code-session");
const binary = claudeCodeBinary();
if (!binary) throw new Error("the Claude Code binary is not installed");
const gateway = await startTestGateway({ models: [{ id: TINY_ID, contextSize: 65536 }] });
const proxy = startRecordingProxy(gateway.url);
const home = mkdtempSync(join(tmpdir(), "cortex-claude-session-"));
try {
  for (const [args, prompt] of [
    [[], "List the files here."],
    [["--continue"], "Now count them."],
  ] as const)
    await runClaudeCode({
      binary,
      baseUrl: proxy.url,
      apiKey: "sk-test",
      model: TINY_ID,
      prompt,
      timeoutMs: 120_000,
      home,
      args: [...args],
    });
  const written = writeSessionFixtures(OUT, conversationBodies(proxy.exchanges), (i) => `turn-${i + 1}.json`);
  console.log(`wrote ${written} request(s) to ${OUT}`);
} finally {
  proxy.stop();
  await gateway.stop();
  rmSync(home, { recursive: true, force: true });
}
