/**
 * Records a real multi-turn Claude Code session for bench/agent-session.ts:
 * the CLI (`claude -p`, then `claude -p --continue` in the same HOME) against
 * the gateway on loopback, over a scripted neuron that answers some requests
 * with tool calls (Bash `ls`, Read of a file in the temp HOME) and others
 * with text, so the CLI really runs the tools and sends their results. The
 * `/v1/messages` bodies of the session (the ones with tools; the CLI's
 * side requests such as titles are left out) are scrubbed like
 * tests/integration/helpers-dialects/record-claude-session.ts does, billing
 * block kept verbatim, into bench/__fixtures__/claude-code-agent-session/.
 *
 *   bun bench/record-agent-session.ts
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { claudeCodeBinary, runClaudeCode } from "../tests/integration/helpers-dialects/claude-code.ts";
import { startRecordingProxy } from "../tests/integration/helpers-dialects/recording-proxy.ts";
import {
  type ReceivedChat,
  startScriptedNeuron,
} from "../tests/integration/helpers-dialects/scripted-neuron.ts";
import {
  conversationBodies,
  writeSessionFixtures,
} from "../tests/integration/helpers-dialects/session-fixtures.ts";
import { startTestGateway, TINY_ID } from "../tests/integration/helpers-dialects/test-gateway.ts";

const OUT = join(import.meta.dir, "__fixtures__", "claude-code-agent-session");
const PROMPTS: Array<{ prompt: string; continue: boolean }> = [
  { prompt: "List the files here.", continue: false },
  { prompt: "Read notes.txt and tell me what it says.", continue: true },
  { prompt: "List the files again, please.", continue: true },
  { prompt: "Thanks. Summarise what we did.", continue: true },
];

function lastUserText(body: ReceivedChat): string {
  const last = body.messages.at(-1);
  if (last?.role !== "user") return "";
  const content = last.content;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((part) => (part as { text?: string }).text ?? "").join("\n");
  return "";
}

const binary = claudeCodeBinary();
if (!binary) throw new Error("the Claude Code binary is not installed");
const home = mkdtempSync(join(tmpdir(), "cortex-agent-session-"));
writeFileSync(join(home, "notes.txt"), "The river runs past the old mill, and the dog barks once.\n");
writeFileSync(join(home, "todo.md"), "- water the plants\n- read the notes\n");
const neuron = startScriptedNeuron([TINY_ID]);
let calls = 0;
neuron.reply = (body) => {
  if ((body.tools?.length ?? 0) === 0) return { text: "ok" };
  const last = body.messages.at(-1);
  if (last?.role === "tool") return { text: "Done: the tool answered, and here is what it said." };
  const text = lastUserText(body);
  calls += 1;
  const id = `toolu_agentbench_${String(calls).padStart(2, "0")}`;
  if (/\bList\b/i.test(text))
    return {
      toolCalls: [
        { id, name: "Bash", arguments: JSON.stringify({ command: "ls", description: "List files" }) },
      ],
    };
  if (/\bRead\b/.test(text))
    return {
      toolCalls: [{ id, name: "Read", arguments: JSON.stringify({ file_path: join(home, "notes.txt") }) }],
    };
  return { text: "We listed the files twice and read the notes." };
};
const gateway = await startTestGateway({
  neurons: [{ name: "scripted", endpoint: neuron.url }],
  models: [{ id: TINY_ID, contextSize: 65536 }],
});
const proxy = startRecordingProxy(gateway.url);
try {
  for (const step of PROMPTS) {
    const run = await runClaudeCode({
      binary,
      baseUrl: proxy.url,
      apiKey: "sk-test",
      model: TINY_ID,
      prompt: step.prompt,
      timeoutMs: 120_000,
      home,
      args: [...(step.continue ? ["--continue"] : []), "--allowedTools", "Bash(ls),Read"],
    });
    console.error(
      `$ claude -p ${JSON.stringify(step.prompt)}: exit ${run.exitCode}, ${run.stdout.trim().slice(0, 120)}`,
    );
    if (run.exitCode !== 0) console.error(run.stderr.slice(-2000));
  }
  rmSync(OUT, { recursive: true, force: true });
  const written = writeSessionFixtures(
    OUT,
    conversationBodies(proxy.exchanges),
    (i) => `turn-${String(i + 1).padStart(2, "0")}.json`,
  );
  console.log(`wrote ${written} request(s) to ${OUT}`);
} finally {
  proxy.stop();
  await gateway.stop();
  neuron.stop();
  rmSync(home, { recursive: true, force: true });
}
