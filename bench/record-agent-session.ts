/**
 * Records a real multi-turn agent session for bench/agent-session.ts: the
 * CLI against the gateway on loopback, over a scripted neuron that answers
 * "List …" and "Read …" with tool calls and everything else with text, so
 * the CLI really runs the tools and sends their results.
 *
 * - `--client claude-code` (default): `claude -p`, then `claude -p
 *   --continue` in the same HOME; tools Bash `ls` and Read of a file in the
 *   temp HOME; the `/v1/messages` bodies of the session (the ones with
 *   tools; side requests such as titles are left out), billing block kept
 *   verbatim, into bench/__fixtures__/claude-code-agent-session/.
 * - `--client codex`: `codex exec`, then `codex exec resume --last` in the
 *   same HOME; tool `exec_command` running `ls` and `cat notes.txt`; the
 *   `/v1/responses` bodies into bench/__fixtures__/codex-agent-session/,
 *   UUIDs (session, turn, item ids) renumbered and the temp HOME replaced.
 *   Run it where only loopback exists, as the Codex test does:
 *   `unshare -n sh -c 'ip link set lo up && exec bun bench/record-agent-session.ts --client codex'`.
 *
 * Both scrubbed as tests/integration/helpers-dialects/scrub-request.ts does
 * (prose replaced by corpus filler of the same length).
 *
 *   bun bench/record-agent-session.ts [--client claude-code|codex]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { claudeCodeBinary, runClaudeCode } from "../tests/integration/helpers-dialects/claude-code.ts";
import { codexBinary, runCodex } from "../tests/integration/helpers-dialects/codex.ts";
import {
  type RecordedExchange,
  startRecordingProxy,
} from "../tests/integration/helpers-dialects/recording-proxy.ts";
import {
  type ReceivedChat,
  type ScriptedToolCall,
  startScriptedNeuron,
} from "../tests/integration/helpers-dialects/scripted-neuron.ts";
import {
  conversationBodies,
  responsesBodies,
  withStableIds,
  writeSessionFixtures,
} from "../tests/integration/helpers-dialects/session-fixtures.ts";
import { startTestGateway, TINY_ID } from "../tests/integration/helpers-dialects/test-gateway.ts";

const { values: args } = parseArgs({ options: { client: { type: "string", default: "claude-code" } } });

/** One CLI's part: how a turn is run, which tool calls answer "List"/"Read", which requests are the session's. */
interface Client {
  fixture: string;
  /** Runs one prompt; `resume` continues the HOME's last session. */
  run(options: { baseUrl: string; prompt: string; home: string; resume: boolean }): Promise<{
    exitCode: number | null;
    stdout: string;
    stderr: string;
  }>;
  list(id: string): ScriptedToolCall;
  read(id: string, home: string): ScriptedToolCall;
  bodies(exchanges: readonly RecordedExchange[], home: string): Array<Record<string, unknown>>;
  /** Whether the scripted model reasons before it answers (as the models Codex is made for do). */
  reasons: boolean;
}

function claudeCode(): Client {
  const binary = claudeCodeBinary();
  if (!binary) throw new Error("the Claude Code binary is not installed");
  return {
    fixture: "claude-code-agent-session",
    run: ({ baseUrl, prompt, home, resume }) =>
      runClaudeCode({
        binary,
        baseUrl,
        apiKey: "sk-test",
        model: TINY_ID,
        prompt,
        timeoutMs: 120_000,
        home,
        args: [...(resume ? ["--continue"] : []), "--allowedTools", "Bash(ls),Read"],
      }),
    list: (id) => ({
      id,
      name: "Bash",
      arguments: JSON.stringify({ command: "ls", description: "List files" }),
    }),
    read: (id, home) => ({
      id,
      name: "Read",
      arguments: JSON.stringify({ file_path: join(home, "notes.txt") }),
    }),
    bodies: (exchanges) => conversationBodies(exchanges),
    reasons: false,
  };
}

function codex(): Client {
  const binary = codexBinary();
  if (!binary) throw new Error("the Codex binary is not installed");
  return {
    fixture: "codex-agent-session",
    run: ({ baseUrl, prompt, home, resume }) =>
      runCodex({ binary, baseUrl, apiKey: "sk-test", model: TINY_ID, prompt, home, resume }),
    list: (id) => ({ id, name: "exec_command", arguments: JSON.stringify({ cmd: "ls" }) }),
    read: (id) => ({ id, name: "exec_command", arguments: JSON.stringify({ cmd: "cat notes.txt" }) }),
    bodies: (exchanges, home) => withStableIds(responsesBodies(exchanges), [[home, "/home/user"]]),
    reasons: true,
  };
}

const PROMPTS: Array<{ prompt: string; resume: boolean }> = [
  { prompt: "List the files here.", resume: false },
  { prompt: "Read notes.txt and tell me what it says.", resume: true },
  { prompt: "List the files again, please.", resume: true },
  { prompt: "Thanks. Summarise what we did.", resume: true },
];

function lastUserText(body: ReceivedChat): string {
  const last = body.messages.at(-1);
  if (last?.role !== "user") return "";
  const content = last.content;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((part) => (part as { text?: string }).text ?? "").join("\n");
  return "";
}

const client = args.client === "codex" ? codex() : args.client === "claude-code" ? claudeCode() : undefined;
if (!client) throw new Error(`--client: expected claude-code or codex, got ${args.client}`);
const OUT = join(import.meta.dir, "__fixtures__", client.fixture);
const home = mkdtempSync(join(tmpdir(), "cortex-agent-session-"));
// Codex runs in the HOME's `work` folder, Claude Code in the HOME itself: the files go where `ls` looks.
const files = args.client === "codex" ? join(home, "work") : home;
Bun.spawnSync(["mkdir", "-p", files]);
writeFileSync(join(files, "notes.txt"), "The river runs past the old mill, and the dog barks once.\n");
writeFileSync(join(files, "todo.md"), "- water the plants\n- read the notes\n");
const neuron = startScriptedNeuron([TINY_ID]);
let calls = 0;
const reasoning = (text: string) => (client.reasons ? { reasoning: text } : {});
neuron.reply = (body) => {
  if ((body.tools?.length ?? 0) === 0) return { text: "ok" };
  const last = body.messages.at(-1);
  if (last?.role === "tool")
    return {
      ...reasoning("The tool has answered; I will tell the user."),
      text: "Done: the tool answered, and here is what it said.",
    };
  const text = lastUserText(body);
  calls += 1;
  const id = `toolu_agentbench_${String(calls).padStart(2, "0")}`;
  if (/\bList\b/i.test(text))
    return { ...reasoning("I should list the files."), toolCalls: [client.list(id)] };
  if (/\bRead\b/.test(text))
    return { ...reasoning("I should read the file."), toolCalls: [client.read(id, files)] };
  return { ...reasoning("Nothing to run."), text: "We listed the files twice and read the notes." };
};
const gateway = await startTestGateway({
  neurons: [{ name: "scripted", endpoint: neuron.url }],
  models: [{ id: TINY_ID, contextSize: 65536 }],
});
const proxy = startRecordingProxy(gateway.url);
try {
  for (const step of PROMPTS) {
    const run = await client.run({ baseUrl: proxy.url, prompt: step.prompt, home, resume: step.resume });
    console.error(
      `$ ${args.client} ${JSON.stringify(step.prompt)}: exit ${run.exitCode}, ${run.stdout.trim().slice(0, 120)}`,
    );
    if (run.exitCode !== 0) console.error(run.stderr.slice(-2000));
  }
  rmSync(OUT, { recursive: true, force: true });
  const written = writeSessionFixtures(
    OUT,
    client.bodies(proxy.exchanges, home),
    (i) => `turn-${String(i + 1).padStart(2, "0")}.json`,
  );
  console.log(`wrote ${written} request(s) to ${OUT}`);
} finally {
  proxy.stop();
  await gateway.stop();
  neuron.stop();
  rmSync(home, { recursive: true, force: true });
}
