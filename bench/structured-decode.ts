/**
 * Decode rate under a JSON-schema grammar (see bench/README.md, results in BENCHMARKS.md).
 *
 *   bun bench/structured-decode.ts --model PATH.gguf [--llama-server PATH] [--threads 1]
 *                                  [--rounds 5] [--tokens 128]
 *
 * 1. The neuron engine (DevicePool.generate, in-process) on one model: greedy
 *    decode tokens/s with the schema's grammar (json-schema-to-gbnf.ts)
 *    against without one, same prompt and token budget, rounds alternating.
 * 2. With `--llama-server` (a built llama-server of the same llama.cpp
 *    release): llama-server's `/completion` with the same grammar text, the
 *    same rendered prompt, threads and context, against the engine, and
 *    llama-server without a grammar for its own ratio.
 *
 * Decode rate = (tokens − 1) / (first token → last token): prefill is
 * excluded. llama-server reports its own `timings.predicted_per_second`,
 * which measures the same window. Speed is judged by ratios measured in
 * the same run, never by absolute numbers.
 */
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { consola } from "consola";
import { jsonSchemaToGbnf } from "../src/core/grammar/json-schema-to-gbnf.ts";
import { DevicePool } from "../src/neuron/engine/device-pool.ts";
import type { GrammarSpec } from "../src/neuron/engine/types.ts";
import { renderChatTemplate } from "../src/neuron/prompt/chat-template.ts";
import { decodeRate, fixed, median, pairedRatio, range } from "./stats.ts";

/** A schema whose answers are long: eight records of bounded strings and integers. */
const SCHEMA = {
  type: "object",
  properties: {
    items: {
      type: "array",
      items: {
        type: "object",
        properties: {
          name: { type: "string", maxLength: 40 },
          quantity: { type: "integer", minimum: 1, maximum: 999 },
          unit: { enum: ["kg", "g", "l", "piece"] },
          note: { type: "string", maxLength: 80 },
        },
        required: ["name", "quantity", "unit", "note"],
        additionalProperties: false,
      },
      minItems: 8,
      maxItems: 8,
    },
  },
  required: ["items"],
  additionalProperties: false,
};
const USER = "List eight things to buy for a bakery as JSON, with a note on each.";

interface Options {
  model: string;
  llamaServer: string | undefined;
  threads: number;
  rounds: number;
  tokens: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      "llama-server": { type: "string" },
      threads: { type: "string", default: "1" },
      rounds: { type: "string", default: "5" },
      tokens: { type: "string", default: "128" },
    },
  });
  if (values.model === undefined || !existsSync(values.model))
    throw new Error("--model PATH.gguf is required");
  if (values["llama-server"] !== undefined && !existsSync(values["llama-server"]))
    throw new Error(`no llama-server at ${values["llama-server"]}`);
  return {
    model: values.model,
    llamaServer: values["llama-server"],
    threads: Number(values.threads),
    rounds: Number(values.rounds),
    tokens: Number(values.tokens),
  };
}

interface Run {
  tokens: number;
  rate: number;
  text: string;
}

async function engineRun(
  pool: DevicePool,
  prompt: string,
  tokens: number,
  grammar?: GrammarSpec,
): Promise<Run> {
  let firstAt = 0;
  let text = "";
  for await (const event of pool.generate("bench", {
    prompt,
    maxTokens: tokens,
    temperature: 0,
    ...(grammar === undefined ? {} : { grammar }),
  })) {
    if (event.type === "text") {
      if (text === "") firstAt = performance.now();
      text += event.text;
    } else if (event.type === "error") throw new Error(`engine: ${event.error.message}`);
    else if (event.type === "done") {
      const ms = performance.now() - firstAt;
      return {
        tokens: event.usage.completionTokens,
        rate: decodeRate(event.usage.completionTokens, ms),
        text,
      };
    }
  }
  throw new Error("engine: no done event");
}

class LlamaServer {
  readonly #proc: ReturnType<typeof Bun.spawn>;
  readonly url: string;

  private constructor(proc: ReturnType<typeof Bun.spawn>, url: string) {
    this.#proc = proc;
    this.url = url;
  }

  static async start(bin: string, model: string, threads: number, context: number): Promise<LlamaServer> {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const proc = Bun.spawn(
      [
        bin,
        "-m",
        model,
        "-c",
        String(context),
        "-np",
        "1",
        "-t",
        String(threads),
        "-tb",
        String(threads),
      ].concat(["--host", "127.0.0.1", "--port", String(port), "--no-webui", "-ngl", "0", "--log-disable"]),
      { env: { ...process.env, LD_LIBRARY_PATH: dirname(bin) }, stdout: "ignore", stderr: "ignore" },
    );
    const server = new LlamaServer(proc, `http://127.0.0.1:${port}`);
    for (let i = 0; i < 600; i++) {
      const ok = await fetch(`${server.url}/health`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) return server;
      if (proc.exitCode !== null) break;
      await Bun.sleep(100);
    }
    proc.kill();
    throw new Error("llama-server did not become healthy");
  }

  async run(prompt: string, tokens: number, grammar?: string): Promise<Run> {
    const response = await fetch(`${this.url}/completion`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        prompt,
        n_predict: tokens,
        temperature: 0,
        cache_prompt: false,
        ...(grammar === undefined ? {} : { grammar }),
      }),
    });
    const body = (await response.json()) as {
      content: string;
      tokens_predicted: number;
      timings: { predicted_per_second: number };
    };
    if (!response.ok) throw new Error(`llama-server: ${JSON.stringify(body)}`);
    return { tokens: body.tokens_predicted, rate: body.timings.predicted_per_second, text: body.content };
  }

  stop(): void {
    this.#proc.kill();
  }
}

function report(label: string, rates: number[]): void {
  const [lo, hi] = range(rates);
  consola.info(`${label.padEnd(34)} ${fixed(median(rates)).padStart(7)} tok/s  (${fixed(lo)}–${fixed(hi)})`);
}

async function main(): Promise<void> {
  const options = parseOptions();
  const context = 2048;
  const gbnf = jsonSchemaToGbnf(SCHEMA, "schema");
  consola.info(
    `model ${options.model}, ${options.threads} thread(s), ${options.rounds} rounds, ≤ ${options.tokens} tokens, ${cpus()[0]?.model ?? "cpu"}`,
  );
  const pool = await DevicePool.start({ threads: options.threads });
  const server = options.llamaServer
    ? await LlamaServer.start(options.llamaServer, options.model, options.threads, context)
    : undefined;
  try {
    await pool.load({ id: "bench", path: options.model, contextSize: context, slots: 1 });
    const info = pool.model("bench")!;
    if (info.chatTemplate === null) throw new Error("the model has no chat template");
    const prompt = renderChatTemplate(
      info.chatTemplate,
      { messages: [{ role: "user", content: USER }] },
      info,
    );
    const rates = {
      free: [] as number[],
      json: [] as number[],
      serverFree: [] as number[],
      serverJson: [] as number[],
    };
    let sample = "";
    // Warm-up: page the weights in on both sides.
    await engineRun(pool, prompt, 16);
    await server?.run(prompt, 16);
    for (let round = 0; round < options.rounds; round++) {
      const steps: Array<() => Promise<void>> = [
        async () => void rates.free.push((await engineRun(pool, prompt, options.tokens)).rate),
        async () => {
          const run = await engineRun(pool, prompt, options.tokens, { gbnf });
          rates.json.push(run.rate);
          sample = run.text;
        },
      ];
      if (server) {
        steps.push(async () => void rates.serverFree.push((await server.run(prompt, options.tokens)).rate));
        steps.push(
          async () => void rates.serverJson.push((await server.run(prompt, options.tokens, gbnf)).rate),
        );
      }
      // Alternate the order so drift does not favour one side.
      if (round % 2 === 1) steps.reverse();
      for (const step of steps) await step();
    }
    consola.info(`constrained sample: ${sample.slice(0, 160)}…`);
    report("cortex, no grammar", rates.free);
    report("cortex, JSON-schema grammar", rates.json);
    consola.info(`cortex grammar / no grammar: ${fixed(pairedRatio(rates.json, rates.free), 3)}`);
    if (server) {
      report("llama-server, no grammar", rates.serverFree);
      report("llama-server, same grammar", rates.serverJson);
      consola.info(
        `llama-server grammar / no grammar: ${fixed(pairedRatio(rates.serverJson, rates.serverFree), 3)}`,
      );
      consola.info(
        `cortex / llama-server, with grammar: ${fixed(pairedRatio(rates.json, rates.serverJson), 3)}`,
      );
      consola.info(
        `cortex / llama-server, no grammar: ${fixed(pairedRatio(rates.free, rates.serverFree), 3)}`,
      );
    }
  } finally {
    server?.stop();
    await pool.close();
  }
}

await main();
