/**
 * Records what llama.cpp renders for a set of chat requests with real chat
 * templates, so tests/integration/template-fidelity.test.ts can hold our
 * Jinja rendering to it byte for byte without building llama-server.
 *
 * For each template (SmolLM2-135M-Instruct's own, from its GGUF, and the
 * real models' templates llama.cpp keeps in models/templates/ of the source
 * it was built from), llama-server (bench/peers/build-llama-server.ts) is
 * started with `--jinja --chat-template-file` over the SmolLM2 GGUF (its BOS
 * and EOS are the tokens every render sees) and asked `/apply-template` for
 * each case below. The answers, with each template's sha256, go to
 * tests/fixtures/chat-templates/llama-server.json.
 *
 *   bun scripts/template-fixtures.ts
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { freePort, waitUntil } from "../bench/bench-services.ts";
import { ensureLlamaServer } from "../bench/peers/build-llama-server.ts";
import { ensureModel } from "./fetch-models.ts";

const root = join(import.meta.dir, "..");
export const FIXTURE = join(root, "tests", "fixtures", "chat-templates", "llama-server.json");
/** The BOS and EOS of the GGUF llama-server runs with (SmolLM2's), which every render sees. */
export const FIXTURE_TOKENS = { bosToken: "<|im_start|>", eosToken: "<|im_end|>" };

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", description: "City name" } },
      required: ["city"],
    },
  },
};
const time = {
  type: "function",
  function: {
    name: "get_time",
    description: "Local time in a time zone",
    parameters: { type: "object", properties: { zone: { type: "string" } }, required: ["zone"] },
  },
};
const system = { role: "system", content: "You are a terse assistant." };
const question = { role: "user", content: "What is the weather in Paris, and the time there?" };
const calls = {
  role: "assistant",
  content: "",
  tool_calls: [
    { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
    { id: "call_2", type: "function", function: { name: "get_time", arguments: '{"zone":"Europe/Paris"}' } },
  ],
};

/** OpenAI chat request bodies (the fields a prompt depends on). */
export const CASES: Record<string, Record<string, unknown>> = {
  user: { messages: [{ role: "user", content: "Name the capital of France." }] },
  "system-user": { messages: [system, { role: "user", content: "Name the capital of France." }] },
  // OpenAI's newer name for the system role (llama.cpp keeps it for gpt-oss, whose template reads it).
  developer: {
    messages: [
      { role: "developer", content: "You are a terse assistant." },
      { role: "user", content: "Name the capital of France." },
    ],
  },
  "multi-turn": {
    messages: [
      system,
      { role: "user", content: "Hi!" },
      { role: "assistant", content: "Hello. What do you need?" },
      { role: "user", content: "Name the capital of France." },
    ],
  },
  // An earlier turn's reasoning, which each template keeps or drops its own way.
  "reasoning-history": {
    messages: [
      system,
      { role: "user", content: "Hi!" },
      { role: "assistant", reasoning_content: "The user greets me.", content: "Hello. What do you need?" },
      { role: "user", content: "Name the capital of France." },
    ],
  },
  // The multimodal message shape: content as an array of parts (text only; see "image").
  "content-parts": {
    messages: [
      { role: "system", content: [{ type: "text", text: "You are a terse assistant." }] },
      {
        role: "user",
        content: [
          { type: "text", text: "Name the capital" },
          { type: "text", text: "of France." },
        ],
      },
    ],
  },
  // An image for a model without a vision projector (SmolLM2): refused by llama-server and by us.
  image: {
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: "What is in this picture?" },
          { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
        ],
      },
    ],
  },
  tools: { messages: [system, question], tools: [weather, time] },
  "tool-results": {
    messages: [
      system,
      question,
      calls,
      { role: "tool", tool_call_id: "call_1", content: "18 C, sunny" },
      { role: "tool", tool_call_id: "call_2", content: "14:05" },
    ],
    tools: [weather, time],
  },
  "tool-results-answered": {
    messages: [
      question,
      calls,
      { role: "tool", tool_call_id: "call_1", content: "18 C, sunny" },
      { role: "tool", tool_call_id: "call_2", content: "14:05" },
      { role: "assistant", content: "Sunny, 18 C; it is 14:05." },
      { role: "user", content: "Thanks. And in Rome?" },
    ],
    tools: [weather, time],
  },
};

export interface TemplateFixture {
  /** sha256 of the template source the prompts were rendered with. */
  sha256: string;
  /** Case name → llama-server's prompt, or its error when it refused the request. */
  prompts: Record<string, { prompt: string } | { error: string }>;
}

export interface Fixtures {
  llamaCpp: string;
  /** When the prompts were rendered (ms since the epoch): the date templates print (`strftime_now`). */
  now: number;
  templates: Record<string, TemplateFixture>;
}

/** Where llama.cpp's example templates are: the source build-llama-server.ts unpacked. */
export function llamaTemplatesDir(version: string): string {
  return join(root, ".cache", "llama-server", version, "src", "models", "templates");
}

/** The SmolLM2 GGUF's `tokenizer.chat_template`, read with the neuron's GGUF reader. */
export async function ggufTemplate(path: string): Promise<string> {
  const { readGgufInfo } = await import("../src/neuron/gguf/gguf-reader.ts");
  const template = (await readGgufInfo(path)).chatTemplate;
  if (template === undefined) throw new Error(`${path} has no chat template`);
  return template;
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

async function renderAll(
  server: string,
  model: string,
  templateFile: string,
): Promise<TemplateFixture["prompts"]> {
  const port = freePort();
  const child = Bun.spawn(
    [
      server,
      "-m",
      model,
      "--port",
      String(port),
      "-t",
      "1",
      "-c",
      "512",
      "--jinja",
      "--chat-template-file",
      templateFile,
    ],
    { env: { ...process.env, LD_LIBRARY_PATH: dirname(server) }, stdout: "ignore", stderr: "pipe" },
  );
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitUntil(
      "llama-server",
      async () => (await fetch(`${url}/health`)).ok,
      60_000,
      () => child.exitCode === null,
    );
    const prompts: TemplateFixture["prompts"] = {};
    for (const [name, body] of Object.entries(CASES)) {
      const response = await fetch(`${url}/apply-template`, { method: "POST", body: JSON.stringify(body) });
      const json = (await response.json()) as { prompt?: string; error?: { message?: string } };
      prompts[name] =
        response.ok && typeof json.prompt === "string"
          ? { prompt: json.prompt }
          : { error: json.error?.message ?? `HTTP ${response.status}` };
    }
    return prompts;
  } finally {
    child.kill();
    await child.exited;
  }
}

if (import.meta.main) {
  const { server, version } = await ensureLlamaServer();
  const model = await ensureModel("smollm2-135m");
  const work = mkdtempSync(join(tmpdir(), "cortex-templates-"));
  const sources: Array<[string, string]> = [["SmolLM2-135M-Instruct (GGUF)", await ggufTemplate(model)]];
  const dir = llamaTemplatesDir(version);
  for (const file of [...new Bun.Glob("*.jinja").scanSync({ cwd: dir })].sort())
    sources.push([file, readFileSync(join(dir, file), "utf8")]);
  const fixtures: Fixtures = { llamaCpp: version, now: Date.now(), templates: {} };
  try {
    for (const [name, source] of sources) {
      const file = join(work, "template.jinja");
      writeFileSync(file, source);
      try {
        fixtures.templates[name] = { sha256: sha256(source), prompts: await renderAll(server, model, file) };
        console.log(`template-fixtures: ${name}`);
      } catch (error) {
        // llama-server refuses some templates at start (its own parser's limits): left out, and said.
        console.warn(
          `template-fixtures: ${name} left out: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!existsSync(dirname(FIXTURE))) throw new Error(`${dirname(FIXTURE)} is missing`);
  writeFileSync(FIXTURE, `${JSON.stringify(fixtures, null, 1)}\n`);
  console.log(`template-fixtures: ${Object.keys(fixtures.templates).length} templates → ${FIXTURE}`);
}
