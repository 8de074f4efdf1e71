/**
 * Codex sessions against a gateway started here on a real model (the GGUF
 * path is the first argument), printed as JSON on stdout: the real-model
 * agents test runs this script in a network namespace of its own where only
 * loopback exists (`unshare -n`), so nothing Codex does leaves the machine.
 *
 * Three runs, each with the options that fit a small model
 * (smallModelCodexArgs): a question, a second turn of the same session
 * (`exec resume --last`), and a fresh session whose instructions do not fit
 * the model's context. Then the gateway's own log of what it served
 * (`/admin/requests/recent`).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { codexBinary, runCodex, smallModelCodexArgs } from "./codex.ts";
import { type RecordedExchange, startRecordingProxy } from "./recording-proxy.ts";
import { startTestGateway } from "./test-gateway.ts";

const [modelPath, model, contextSize] = process.argv.slice(2);
if (modelPath === undefined || model === undefined || contextSize === undefined)
  throw new Error("usage: codex-real-model-session.ts <gguf> <model id> <context size>");
const binary = codexBinary();
if (binary === undefined) throw new Error("no Codex binary for this platform");

const KEY = "sk-codex-real-model";
const dir = mkdtempSync(join(tmpdir(), "cortex-codex-real-"));
const instructions = join(dir, "instructions.md");
const tooLong = join(dir, "too-long.md");
const schema = join(dir, "answer.schema.json");
writeFileSync(instructions, "You are a helpful assistant.\n");
// ~12k tokens for SmolLM2's tokenizer, over its 8192-token context.
writeFileSync(tooLong, "Paris is a city. ".repeat(2500));
writeFileSync(
  schema,
  JSON.stringify({
    type: "object",
    properties: { answer: { type: "string", maxLength: 40 } },
    required: ["answer"],
    additionalProperties: false,
  }),
);

const gw = await startTestGateway({
  apiKeys: [KEY],
  models: [{ id: model, file: basename(modelPath), contextSize: Number(contextSize) }],
  linkFiles: [modelPath],
});
const proxy = startRecordingProxy(gw.url);

/** What a test needs of one request: its size and shape, and the usage its stream ended with. */
async function summary(exchange: RecordedExchange) {
  const body = exchange.body === "" ? {} : (JSON.parse(exchange.body) as Record<string, unknown>);
  let completed: unknown;
  if (exchange.streamText)
    for (const line of (await exchange.streamText).split("\n"))
      if (line.startsWith("data: ")) {
        const event = JSON.parse(line.slice(6)) as { type: string; response?: unknown };
        if (event.type === "response.completed") completed = event.response;
      }
  return {
    method: exchange.method,
    path: exchange.path,
    status: exchange.status,
    bytes: exchange.body.length,
    input: Array.isArray(body.input) ? body.input.length : 0,
    tools: Array.isArray(body.tools) ? body.tools.length : 0,
    text: body.text,
    error: exchange.json,
    completed,
  };
}

async function run(prompt: string, options: { home: string; resume?: boolean; instructions: string }) {
  proxy.exchanges.length = 0;
  const started = performance.now();
  const result = await runCodex({
    binary: binary as string,
    baseUrl: proxy.url,
    apiKey: KEY,
    model: model as string,
    prompt,
    home: options.home,
    ...(options.resume === undefined ? {} : { resume: options.resume }),
    args: smallModelCodexArgs(options.instructions, schema),
  });
  const ms = Math.round(performance.now() - started);
  return { ...result, ms, requests: await Promise.all(proxy.exchanges.map(summary)) };
}

const session = join(dir, "session");
const fresh = join(dir, "fresh");
try {
  const answer = await run("Name the capital of France.", { home: session, instructions });
  const resume = await run("Name the capital of Germany.", { home: session, resume: true, instructions });
  const overflow = await run("Name the capital of France.", { home: fresh, instructions: tooLong });
  const recent = await (await fetch(`${gw.url}/admin/requests/recent`)).json();
  console.log(JSON.stringify({ answer, resume, overflow, recent }));
} finally {
  proxy.stop();
  await gw.stop();
  rmSync(dir, { recursive: true, force: true });
}
