/**
 * The agent CLIs for real against a real model: Claude Code (`claude -p`)
 * and Codex (`codex exec`) against the gateway and its in-process neuron
 * serving SmolLM2-135M-Instruct at its trained context (8192 tokens).
 *
 * Their default requests (Claude Code ~48 KB, ~4k tokens of it reaching
 * this model, whose template drops tool definitions; Codex ~26 KB) take a
 * minute and more to prefill here, so each runs with its own documented
 * options that shrink what it sends to under 2 KB (SMALL_MODEL_CLAUDE_ARGS,
 * smallModelCodexArgs; docs/CLIENTS.md shows them). Claude Code is greedy
 * (temperature 0 through CLAUDE_CODE_EXTRA_BODY), so its answer is the
 * model's own; Codex cannot set a temperature, so its answer is sampled and
 * only its shape (the output schema) is checked. What proves the real model
 * served them is the gateway's own log of each request.
 *
 * Tool calls: SmolLM2's chat template renders no tools, so the model never
 * sees a tool's definition and calls one only when a request forces it,
 * which neither CLI does. The CLI runs here are a question and a session's
 * second turn; the turn after a tool's result runs through the SDKs, with
 * the call forced.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { type RecentRequest, RecentRequestsResponse } from "../../src/core/admin-api.ts";
import { MODELS, MODELS_DIR } from "../../scripts/fetch-models.ts";
import {
  claudeCodeBinary,
  runClaudeCode,
  SMALL_MODEL_CLAUDE_ARGS,
  SMALL_MODEL_CLAUDE_ENV,
} from "./helpers-dialects/claude-code.ts";
import { codexBinary, runLoopbackOnly } from "./helpers-dialects/codex.ts";
import { type RecordingProxy, startRecordingProxy } from "./helpers-dialects/recording-proxy.ts";
import { startTestGateway, type TestGateway } from "./helpers-dialects/test-gateway.ts";
import { anthropicWeather, WEATHER_QUESTION, weather } from "./helpers/weather-tool.ts";

const MODEL = "smollm2";
const CONTEXT = 8192;
const SOURCE = MODELS["smollm2-135m"];
const MODEL_PATH = join(MODELS_DIR, SOURCE.file);
const modelPresent = existsSync(MODEL_PATH);
if (!modelPresent)
  console.warn(
    `real-model agent tests skipped: ${MODEL_PATH} is missing (run: bun scripts/fetch-models.ts smollm2-135m)`,
  );
const claude = claudeCodeBinary();
if (claude === undefined)
  console.warn(
    "real-model Claude Code tests skipped: @anthropic-ai/claude-code-linux-x64 is not installed here",
  );
const codex = codexBinary();
if (codex === undefined)
  console.warn("real-model Codex tests skipped: @openai/codex's linux-x64 binary is not installed here");

const KEY = "sk-ant-real-model-agents";
const QUESTION = "Name the capital of France.";

/** The gateway's log of the requests it served, newest first. */
async function served(url: string): Promise<RecentRequest[]> {
  return RecentRequestsResponse.parse(await (await fetch(`${url}/admin/requests/recent`)).json()).requests;
}

let gw: TestGateway;

beforeAll(async () => {
  if (!modelPresent) return;
  gw = await startTestGateway({
    apiKeys: [KEY],
    models: [{ id: MODEL, file: SOURCE.file, contextSize: CONTEXT }],
    linkFiles: [MODEL_PATH],
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
});

describe.skipIf(!modelPresent || claude === undefined)("Claude Code on SmolLM2-135M-Instruct", () => {
  let proxy: RecordingProxy;
  let home: string;

  beforeAll(() => {
    proxy = startRecordingProxy(gw.url);
    home = mkdtempSync(join(tmpdir(), "cortex-claude-real-"));
  });

  afterAll(() => {
    proxy?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  /** One `claude -p` run in the kept HOME (so `--continue` finds the session), with the small-model options. */
  async function run(prompt: string, args: string[] = [], systemPrompt?: string) {
    proxy.exchanges.length = 0;
    const small =
      systemPrompt === undefined
        ? SMALL_MODEL_CLAUDE_ARGS
        : SMALL_MODEL_CLAUDE_ARGS.map((arg, i, all) =>
            all[i - 1] === "--system-prompt" ? systemPrompt : arg,
          );
    const result = await runClaudeCode({
      binary: claude as string,
      baseUrl: proxy.url,
      apiKey: KEY,
      model: MODEL,
      prompt,
      timeoutMs: 60_000,
      home,
      args: [...small, ...args],
      env: SMALL_MODEL_CLAUDE_ENV,
    });
    const sent = proxy.exchanges.filter((e) => e.method === "POST" && e.path.startsWith("/v1/messages"));
    return { ...result, sent };
  }

  test("claude -p completes on the real model: exit 0, the model's greedy answer printed, served by smollm2", async () => {
    const result = await run(QUESTION);
    if (result.exitCode !== 0)
      console.error(`claude exited ${result.exitCode}:\n${result.stdout}\n${result.stderr}`);
    expect(result.timedOut).toBe(false);
    expect(result.exitCode).toBe(0);
    // Greedy, the model answers this "The capital of France is Paris." (as through the SDKs).
    expect(result.stdout).toContain("Paris");

    expect(result.sent).toHaveLength(1);
    const request = result.sent[0];
    const body = JSON.parse(request?.body ?? "{}") as Record<string, unknown>;
    expect(body).toMatchObject({ model: MODEL, temperature: 0, max_tokens: 128, tools: [] });
    const [log] = await served(gw.url);
    expect(log).toMatchObject({ model: MODEL, node: "local", dialect: "anthropic", status: 200 });
    expect(log?.generatedTokens).toBeGreaterThan(0);
    // What reached the model fits its context with room to answer.
    expect(log?.promptTokens).toBeGreaterThan(0);
    expect((log?.promptTokens ?? CONTEXT) + 128).toBeLessThan(CONTEXT);
    console.log(
      `claude -p: ${request?.body.length} request bytes, ${log?.promptTokens} prompt tokens, ${log?.generatedTokens} generated, ${Math.round(result.ms)} ms`,
    );
  }, 70_000);

  test("a second turn (--continue) sends the first exchange back and completes", async () => {
    const result = await run("Name the capital of Germany.", ["--continue"]);
    if (result.exitCode !== 0)
      console.error(`claude exited ${result.exitCode}:\n${result.stdout}\n${result.stderr}`);
    expect(result.exitCode).toBe(0);
    expect(result.stdout.trim().length).toBeGreaterThan(0);

    const body = JSON.parse(result.sent[0]?.body ?? "{}") as {
      messages: Array<{ role: string; content: unknown }>;
    };
    expect(body.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"]);
    expect(JSON.stringify(body.messages[1]?.content)).toContain("Paris");
    const [second, first] = await served(gw.url);
    expect(second).toMatchObject({ model: MODEL, dialect: "anthropic", status: 200 });
    // The history is part of the prompt the model read.
    expect(second?.promptTokens).toBeGreaterThan((first?.promptTokens ?? 0) + (first?.generatedTokens ?? 0));
  }, 70_000);

  test("a prompt over the model's context: the gateway's 400 in Anthropic's dialect, which Claude Code names", async () => {
    // ~12k tokens for this tokenizer.
    const result = await run(QUESTION, ["--no-session-persistence"], "Paris is a city. ".repeat(2500));
    expect(result.timedOut).toBe(false);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/prompt is too long/i);
    expect(result.stdout).toContain(String(CONTEXT));

    expect(result.sent.map((e) => e.status)).toEqual([400]);
    expect(result.sent[0]?.json).toMatchObject({
      type: "error",
      error: {
        type: "invalid_request_error",
        message: expect.stringMatching(/^prompt is too long: \d+ tokens > 8192/),
      },
    });
  }, 70_000);
});

const TOOL_RESULT = "Sunny, 24 degrees Celsius.";

/**
 * The turn an agent sends after running a tool, which the CLIs cannot get
 * this model to ask for (see the header), through the SDKs instead: the
 * model's forced call, the tool's result sent back, and the answer built on
 * it. What a 135M model fills into a forced call depends on the CPU's
 * kernels: on an AMX Xeon it calls get_weather for "gab" again and again,
 * and after that history answers "</", as llama-server built from the same
 * source does. So the forced turn asks for one call, and the history sent
 * back carries that call's id with Paris as its argument: the turn after a
 * well-formed call is what this test is about. Greedy, the model then
 * answers "The weather in Paris is quite pleasant, with a temperature of 24
 * degrees Celsius." in both dialects there, word for word as llama-server
 * does ("a moderate temperature" on an AMD EPYC).
 */
describe.skipIf(!modelPresent)("SmolLM2-135M-Instruct, multi-turn with a tool result", () => {
  const PARIS = { city: "Paris" };

  test("Anthropic: tool_use, then tool_result: the answer uses the result", async () => {
    const anthropic = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
    const tools = [anthropicWeather];
    const greedy = { temperature: 0 } as object;
    const question = { role: "user" as const, content: WEATHER_QUESTION };
    const call = await anthropic.messages.create({
      model: MODEL,
      max_tokens: 100,
      messages: [question],
      tools,
      // One call: left free, this model calls again and again until max_tokens on some CPUs.
      tool_choice: { type: "tool", name: weather.name, disable_parallel_tool_use: true },
      ...greedy,
    });
    expect(call.stop_reason).toBe("tool_use");
    const use = call.content.find((block) => block.type === "tool_use");
    if (use?.type !== "tool_use") throw new Error("no tool_use in the forced turn");
    expect(use.name).toBe(weather.name);
    expect(use.input).toMatchObject({ city: expect.any(String) });
    const answer = await anthropic.messages.create({
      model: MODEL,
      max_tokens: 60,
      tools,
      messages: [
        question,
        { role: "assistant", content: [{ type: "tool_use", id: use.id, name: use.name, input: PARIS }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: TOOL_RESULT }] },
      ],
      ...greedy,
    });
    expect(answer.stop_reason).toBe("end_turn");
    const text = answer.content.map((block) => (block.type === "text" ? block.text : "")).join("");
    expect(text).toContain("24");
  }, 60_000);

  test("OpenAI: tool_calls, then a tool message: the answer uses the result", async () => {
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const tools = [{ type: "function" as const, function: weather }];
    const question = { role: "user" as const, content: WEATHER_QUESTION };
    const call = await openai.chat.completions.create({
      model: MODEL,
      messages: [question],
      tools,
      tool_choice: { type: "function", function: { name: weather.name } },
      parallel_tool_calls: false,
      temperature: 0,
      max_tokens: 100,
    });
    expect(call.choices[0]?.finish_reason).toBe("tool_calls");
    const toolCall = call.choices[0]?.message?.tool_calls?.[0];
    if (toolCall?.type !== "function") throw new Error("no tool call in the forced turn");
    expect(toolCall.function.name).toBe(weather.name);
    expect(JSON.parse(toolCall.function.arguments)).toMatchObject({ city: expect.any(String) });
    const answer = await openai.chat.completions.create({
      model: MODEL,
      messages: [
        question,
        {
          role: "assistant",
          content: null,
          tool_calls: [
            {
              id: toolCall.id,
              type: "function",
              function: { name: weather.name, arguments: JSON.stringify(PARIS) },
            },
          ],
        },
        { role: "tool", tool_call_id: toolCall.id, content: TOOL_RESULT },
      ],
      tools,
      temperature: 0,
      max_tokens: 60,
    });
    expect(answer.choices[0]?.finish_reason).toBe("stop");
    expect(answer.choices[0]?.message.content).toContain("24");
  }, 60_000);
});

interface CodexRunSummary {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  requests: Array<{
    method: string;
    path: string;
    status: number;
    bytes: number;
    input: number;
    tools: number;
    text?: { format?: { type?: string } };
    error?: { error?: { code?: string; message?: string } };
    completed?: { model: string; status: string; usage: { input_tokens: number; output_tokens: number } };
  }>;
}

interface CodexSessions {
  answer: CodexRunSummary;
  resume: CodexRunSummary;
  overflow: CodexRunSummary;
  recent: unknown;
}

describe.skipIf(!modelPresent || codex === undefined)("Codex on SmolLM2-135M-Instruct", () => {
  let sessions: CodexSessions;
  let log: RecentRequest[];

  beforeAll(async () => {
    const script = join(import.meta.dir, "helpers-dialects/codex-real-model-session.ts");
    const { exitCode, stdout, stderr } = await runLoopbackOnly(script, [MODEL_PATH, MODEL, String(CONTEXT)]);
    if (exitCode !== 0) throw new Error(`codex session script failed (${exitCode}): ${stderr}`);
    sessions = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as CodexSessions;
    log = RecentRequestsResponse.parse(sessions.recent).requests.filter((r) => r.dialect === "responses");
  }, 120_000);

  test("codex exec completes on the real model: exit 0, the answer in its output schema, served by smollm2", () => {
    const { answer } = sessions;
    if (answer.exitCode !== 0) console.error(`codex exited ${answer.exitCode}: ${answer.stderr}`);
    expect(answer.exitCode).toBe(0);
    // Sampled: only the shape is the model's promise, held by the schema's grammar.
    const printed = JSON.parse(answer.stdout.trim()) as { answer: unknown };
    expect(Object.keys(printed)).toEqual(["answer"]);
    expect(typeof printed.answer).toBe("string");

    expect(answer.requests).toHaveLength(1);
    const [request] = answer.requests;
    expect(request).toMatchObject({ method: "POST", path: "/v1/responses", status: 200, tools: 0 });
    expect(request?.text?.format?.type).toBe("json_schema");
    expect(request?.completed).toMatchObject({ model: MODEL, status: "completed" });
    const served = log.at(-1);
    expect(served).toMatchObject({ model: MODEL, node: "local", status: 200 });
    expect(served?.promptTokens).toBe(request?.completed?.usage.input_tokens);
    expect((served?.promptTokens ?? CONTEXT) + 64).toBeLessThan(CONTEXT);
    console.log(
      `codex exec: ${request?.bytes} request bytes, ${served?.promptTokens} prompt tokens, ${served?.generatedTokens} generated, ${answer.ms} ms`,
    );
  });

  test("a second turn (exec resume --last) sends the first exchange back and completes", () => {
    const { resume, answer } = sessions;
    if (resume.exitCode !== 0) console.error(`codex exited ${resume.exitCode}: ${resume.stderr}`);
    expect(resume.exitCode).toBe(0);
    expect(typeof (JSON.parse(resume.stdout.trim()) as { answer: unknown }).answer).toBe("string");
    const [request] = resume.requests;
    // The first turn's question and answer come back ahead of the new question.
    expect(request?.input).toBe((answer.requests[0]?.input ?? 0) + 2);
    expect(request?.completed?.usage.input_tokens).toBeGreaterThan(
      answer.requests[0]?.completed?.usage.input_tokens ?? 0,
    );
    expect(log.at(-2)).toMatchObject({ model: MODEL, status: 200 });
  });

  test("instructions over the model's context: the gateway's 400 in the Responses dialect, which Codex names", () => {
    const { overflow } = sessions;
    expect(overflow.exitCode).toBe(1);
    expect(overflow.stderr).toContain("ran out of room in the model's context window");
    expect(overflow.requests.map((r) => r.status)).toEqual([400]);
    expect(overflow.requests[0]?.error?.error?.code).toBe("context_length_exceeded");
    expect(log.at(-3)).toMatchObject({ model: MODEL, status: 400, error: "context_length_exceeded" });
  });
});
