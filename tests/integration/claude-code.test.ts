/**
 * Claude Code end to end: the real CLI in print mode against the gateway
 * (through a recording proxy), served by the tiny model. Checks that it
 * completes and that what it sent met the gateway's answers the way it
 * expects: its max_tokens of 32000 is more than the context leaves, and the
 * gateway clamps it (gateway.context_overflow = "clamp", the default) so the
 * first request is answered; when a stream breaks, it falls back to
 * stream:false.
 *
 * Claude Code's first request is ~48 KB, which the tiny model's word-level
 * tokenizer reads as ~35k tokens, so the model here is the tiny model with
 * a 128k trained context, loaded at 65536.
 *
 * CORTEX_RECORD_CLAUDE_CODE_FIXTURE=<path> writes the first request it
 * sent, scrubbed, as a new __fixtures__/claude-code-request.json.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { claudeCodeBinary, runClaudeCode } from "./helpers-dialects/claude-code.ts";
import { LONG_TINY_FILE } from "./helpers-dialects/long-tiny-model.ts";
import {
  type RecordedExchange,
  type RecordingProxy,
  startRecordingProxy,
} from "./helpers-dialects/recording-proxy.ts";
import { toRequestFixture } from "./helpers-dialects/scrub-request.ts";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

const KEY = "sk-ant-claude-code-test";
const CONTEXT = 65536;
const binary = claudeCodeBinary();
let gw: TestGateway;
let proxy: RecordingProxy;

beforeAll(async () => {
  if (binary === undefined) return;
  gw = await startTestGateway({
    apiKeys: [KEY],
    longContext: 131072,
    models: [{ id: TINY_ID, file: LONG_TINY_FILE, contextSize: CONTEXT }],
  });
  proxy = startRecordingProxy(gw.url);
});

afterAll(async () => {
  proxy?.stop();
  await gw?.stop();
});

interface SentMessage {
  model: string;
  max_tokens: number;
  stream?: boolean;
  system?: Array<{ type: string; cache_control?: unknown }>;
  messages: Array<{ role: string }>;
  tools?: Array<{ name: string; defer_loading?: boolean }>;
  thinking?: { type: string };
  metadata?: { user_id?: string };
  [key: string]: unknown;
}

interface StreamUsage {
  input_tokens: number;
  cache_read_input_tokens: number;
}

/** The usage a streamed answer ended with (its message_delta), or the JSON answer's. */
async function usageOf(exchange: RecordedExchange): Promise<StreamUsage> {
  const read = (usage: Partial<StreamUsage> | undefined): StreamUsage => ({
    input_tokens: usage?.input_tokens ?? 0,
    cache_read_input_tokens: usage?.cache_read_input_tokens ?? 0,
  });
  if (!exchange.streamText) return read((exchange.json as { usage?: StreamUsage } | undefined)?.usage);
  const events = (await exchange.streamText)
    .split("\n")
    .filter((line) => line.startsWith("data: "))
    .map((line) => JSON.parse(line.slice(6)) as { type: string; usage?: Partial<StreamUsage> });
  return read(events.findLast((event) => event.type === "message_delta")?.usage);
}

function messageCalls(exchanges: RecordedExchange[]) {
  return exchanges
    .filter(
      (e) => e.method === "POST" && e.path.startsWith("/v1/messages") && !e.path.includes("count_tokens"),
    )
    .map((e) => ({ ...e, sent: JSON.parse(e.body) as SentMessage }));
}

/** One `claude -p` run through the recording proxy; `session` keeps its HOME and adds arguments (`--continue`). */
async function run(prompt: string, session: { home: string; args: string[] } | undefined = undefined) {
  if (binary === undefined) throw new Error("unreachable: skipped without the binary");
  proxy.exchanges.length = 0;
  const result = await runClaudeCode({
    binary,
    baseUrl: proxy.url,
    apiKey: KEY,
    model: TINY_ID,
    prompt,
    timeoutMs: 90_000,
    ...session,
  });
  if (result.exitCode !== 0)
    console.error(`claude exited ${result.exitCode}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

describe.skipIf(binary === undefined)("Claude Code", () => {
  test(
    "two turns of one session (--continue): the second turn's prompt is read from the cache, ≥ 90 %",
    async () => {
      const home = mkdtempSync(join(tmpdir(), "cortex-claude-session-"));
      try {
        const turn = async (args: string[], prompt: string) => {
          const result = await run(prompt, { home, args });
          expect(result.exitCode).toBe(0);
          // The conversation's own request: the one that carries the tools and the most messages.
          const conversation = messageCalls(proxy.exchanges)
            .filter((call) => (call.sent.tools?.length ?? 0) > 0)
            .sort((a, b) => b.sent.messages.length - a.sent.messages.length)[0];
          if (conversation === undefined) throw new Error("no conversation request was sent");
          return { sent: conversation.sent, usage: await usageOf(conversation) };
        };
        const first = await turn([], "List the files here.");
        const second = await turn(["--continue"], "Now count them.");
        expect(second.sent.messages.length).toBeGreaterThan(first.sent.messages.length);
        // Claude Code's billing block differs per request and would have defeated this (it is dropped).
        const prompt = second.usage.input_tokens + second.usage.cache_read_input_tokens;
        console.log(
          `turn 2: ${second.usage.cache_read_input_tokens} of ${prompt} prompt tokens read from the cache`,
        );
        expect(prompt).toBeGreaterThan(10_000);
        expect(second.usage.cache_read_input_tokens / prompt).toBeGreaterThanOrEqual(0.9);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    },
    { timeout: 200_000 },
  );

  test(
    "claude -p completes: its 32000 max_tokens over what the context leaves is clamped, not refused",
    async () => {
      const result = await run("Say hello");
      expect(result.timedOut).toBe(false);
      expect(result.exitCode).toBe(0);
      expect(result.stdout.trim().length).toBeGreaterThan(0);

      const calls = messageCalls(proxy.exchanges);
      const first = calls[0];
      if (first === undefined) throw new Error("Claude Code sent no /v1/messages request");
      const recordTo = process.env.CORTEX_RECORD_CLAUDE_CODE_FIXTURE;
      if (recordTo) writeFileSync(recordTo, `${JSON.stringify(toRequestFixture(first), null, 2)}\n`);

      // What this version sends, all of which the gateway accepted.
      expect(first.path).toBe("/v1/messages?beta=true");
      expect(first.headers["anthropic-beta"]?.split(",").length).toBeGreaterThan(3);
      expect(first.body.length).toBeGreaterThan(30_000);
      expect(first.sent.stream).toBe(true);
      expect(first.sent.system?.some((block) => block.cache_control !== undefined)).toBe(true);
      expect(first.sent.tools?.length).toBeGreaterThanOrEqual(10);
      expect(first.sent.metadata?.user_id).toBeString();

      // More than the context leaves after its ~35k-token prompt, answered all the same.
      expect(first.sent.max_tokens).toBe(32000);
      expect(first.status).toBe(200);
      expect(calls.every((call) => call.status === 200)).toBe(true);
    },
    { timeout: 100_000 },
  );

  test(
    "a stream cut short makes it fall back to stream:false, which completes too",
    async () => {
      proxy.cutStreams = 1;
      const result = await run("Say hello");
      expect(result.exitCode).toBe(0);
      expect(result.stdout.trim().length).toBeGreaterThan(0);
      const calls = messageCalls(proxy.exchanges);
      const cut = calls.findIndex((call) => call.status === 200 && call.sent.stream === true);
      expect(cut).toBeGreaterThanOrEqual(0);
      const fallback = calls.slice(cut + 1).filter((call) => call.sent.stream !== true);
      expect(fallback.length).toBeGreaterThan(0);
      expect(fallback.at(-1)?.status).toBe(200);
      expect(fallback.at(-1)?.streamed).toBe(false);
      const answer = fallback.at(-1)?.json as { type?: string; content?: Array<{ type: string }> };
      expect(answer.type).toBe("message");
      expect(answer.content?.[0]?.type).toBe("text");
    },
    { timeout: 100_000 },
  );
});
