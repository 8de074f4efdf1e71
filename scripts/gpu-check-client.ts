/**
 * The HTTP half of scripts/gpu-check.sh: against a running `cortex neuron`,
 * records /health (devices, driver memory), loads a model, runs a chat and a
 * streamed chat, measures decode tokens/s, and records /health again.
 *
 *   bun scripts/gpu-check-client.ts --url http://127.0.0.1:13131 --file rand-100m.gguf --out result.json
 *
 * Exit 0 when every step passed, 1 otherwise; the JSON says which.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    file: { type: "string" },
    out: { type: "string" },
    tokens: { type: "string", default: "256" },
    context: { type: "string", default: "2048" },
  },
});
if (!args.url || !args.file || !args.out) {
  console.error("usage: bun scripts/gpu-check-client.ts --url URL --file MODEL.gguf --out RESULT.json");
  process.exit(2);
}
const url = args.url;
const maxTokens = Number(args.tokens);
const result: Record<string, unknown> = { url, file: args.file };
const failures: string[] = [];

async function step(name: string, fn: () => Promise<Record<string, unknown>>): Promise<void> {
  const started = performance.now();
  try {
    const fields = await fn();
    result[name] = { ok: true, ms: Math.round(performance.now() - started), ...fields };
  } catch (error) {
    failures.push(name);
    result[name] = { ok: false, ms: Math.round(performance.now() - started), error: String(error) };
  }
}

async function call(path: string, body?: unknown): Promise<Response> {
  const response = await fetch(`${url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}: ${await response.text()}`);
  return response;
}

const messages = [{ role: "user", content: "Write a long story about a lighthouse keeper." }];

await step("healthBefore", async () => ({ health: await (await call("/health")).json() }));
await step("load", async () => ({
  model: await (
    await call("/models/load", { file: args.file, id: "check", contextSize: Number(args.context) })
  ).json(),
}));
await step("chat", async () => {
  const body = (await (
    await call("/v1/chat/completions", { model: "check", messages, max_tokens: maxTokens, temperature: 0 })
  ).json()) as {
    usage: { completion_tokens: number; prompt_tokens: number };
    cortex?: { first_token_ms: number; last_token_ms: number };
    choices: Array<{ message: { content: string } }>;
  };
  const tokens = body.usage.completion_tokens;
  const decodeMs = body.cortex ? body.cortex.last_token_ms - body.cortex.first_token_ms : undefined;
  if (tokens < 2) throw new Error(`only ${tokens} token(s) generated`);
  return {
    usage: body.usage,
    timings: body.cortex,
    // Tokens after the first over the time between the first and the last: decode only, no prefill.
    decodeTokensPerS: decodeMs ? Math.round(((tokens - 1) / decodeMs) * 1000 * 10) / 10 : undefined,
    sample: body.choices[0]?.message.content.slice(0, 120),
  };
});
await step("streamedChat", async () => {
  const started = performance.now();
  const response = await call("/v1/chat/completions", {
    model: "check",
    messages,
    max_tokens: maxTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let firstAt: number | undefined;
  let lastAt = 0;
  let chunks = 0;
  let usage: unknown;
  let sawDone = false;
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of response.body ?? []) {
    buffer += decoder.decode(bytes, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n");
      if (data === "") continue;
      if (data === "[DONE]") {
        sawDone = true;
        continue;
      }
      const chunk = JSON.parse(data) as { choices: Array<{ delta: { content?: string } }>; usage?: unknown };
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices[0]?.delta.content) {
        chunks++;
        firstAt ??= performance.now();
        lastAt = performance.now();
      }
    }
  }
  if (!sawDone) throw new Error("the stream ended without [DONE]");
  if (chunks < 2) throw new Error(`only ${chunks} content chunk(s)`);
  return {
    chunks,
    usage,
    ttftMs: firstAt === undefined ? undefined : Math.round(firstAt - started),
    decodeChunksPerS:
      firstAt === undefined ? undefined : Math.round(((chunks - 1) / (lastAt - firstAt)) * 10000) / 10,
  };
});
await step("healthAfter", async () => ({ health: await (await call("/health")).json() }));

result.failures = failures;
writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
console.log(
  `gpu-check-client: ${failures.length === 0 ? "ok" : `failed: ${failures.join(", ")}`} -> ${args.out}`,
);
process.exit(failures.length === 0 ? 0 : 1);
