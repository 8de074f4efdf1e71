/**
 * Cache-aware routing through the gateway: the agent trace (agent-trace.ts)
 * against a gateway over two neurons that both have the model loaded, once
 * with `routing.cache_affinity = false` (least-busy routing) and once with
 * it on, each on fresh neurons. Conversations run concurrently (each turn
 * after the previous one of its conversation), so least-busy routing spreads
 * a conversation's turns over both nodes. Prints the prompt tokens the
 * neurons computed (usage prompt_tokens − cached_tokens) in each mode and
 * their ratio. Then cache-aware routing through two gateway replicas that
 * share nothing, requests alternating between them (round-robin, as behind
 * one Kubernetes Service): its cache-hit rate (cached ÷ prompt tokens)
 * against one gateway's.
 *
 *   bun bench/prefix-routing.ts                     # 4 conversations × 4 turns, ~800-token prefixes
 */
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { stringify as stringifyToml } from "smol-toml";
import { z } from "zod";
import { ensureModel, MODELS, MODELS_DIR } from "../scripts/fetch-models.ts";
import { NeuronSection } from "../src/core/config/config-schema.ts";
import { loadConfig } from "../src/core/config/load-config.ts";
import { configureLogging } from "../src/core/logger.ts";
import { startGateway } from "../src/gateway/run-gateway.ts";
import { startNeuron } from "../src/neuron/start-neuron.ts";
import { systemPrompt, type TraceMessage, userTurn } from "./agent-trace.ts";
import { tempDir, waitUntil } from "./bench-services.ts";
import { fixed } from "./stats.ts";

const { values: args } = parseArgs({
  options: {
    conversations: { type: "string", default: "4" },
    turns: { type: "string", default: "4" },
    "prefix-tokens": { type: "string", default: "800" },
    "turn-tokens": { type: "string", default: "100" },
    slots: { type: "string", default: "2" },
    threads: { type: "string", default: "1" },
  },
});
const opts = {
  conversations: Number(args.conversations),
  turns: Number(args.turns),
  prefixTokens: Number(args["prefix-tokens"]),
  turnTokens: Number(args["turn-tokens"]),
  slots: Number(args.slots),
  threads: Number(args.threads),
};
const MODEL_ID = "smollm2-135m";

const Usage = z.object({
  usage: z.object({
    prompt_tokens: z.number(),
    prompt_tokens_details: z.object({ cached_tokens: z.number() }),
  }),
  choices: z.array(z.object({ message: z.object({ content: z.string().nullable() }) })),
});

async function run(
  cacheAffinity: boolean,
  modelFile: string,
  replicas = 1,
): Promise<{ prompt: number; computed: number }> {
  const dir = tempDir("routing");
  const neurons = await Promise.all(
    ["n1", "n2"].map(() =>
      startNeuron({
        config: NeuronSection.parse({ models_dir: resolve(MODELS_DIR), threads: opts.threads }),
        listen: { hostname: "127.0.0.1", port: 0 },
        preloadDemo: false,
      }),
    ),
  );
  const path = join(dir, "gateway.toml");
  writeFileSync(
    path,
    stringifyToml({
      log: { level: "warn" },
      gateway: { listen: "127.0.0.1:0", metrics: false, poll_interval_ms: 100 },
      routing: { cache_affinity: cacheAffinity },
      neurons: neurons.map((neuron, i) => ({ name: `n${i + 1}`, endpoint: neuron.url })),
      models: [{ id: MODEL_ID, file: modelFile, context_size: 4096, slots: opts.slots }],
    }),
  );
  const gateways = await Promise.all(
    Array.from({ length: replicas }, () => startGateway(loadConfig({ path, env: {} }))),
  );
  const gateway = gateways[0] as Awaited<ReturnType<typeof startGateway>>;
  let sent = 0;
  try {
    for (const node of ["n1", "n2"]) {
      await waitUntil(`${node} up`, async () => {
        const response = await fetch(`${gateway.url}/admin/models/load`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: MODEL_ID, node }),
        });
        return response.ok;
      });
    }
    let prompt = 0;
    let computed = 0;
    await Promise.all(
      Array.from({ length: opts.conversations }, async (_, c) => {
        const history: TraceMessage[] = [{ role: "system", content: systemPrompt(c, opts.prefixTokens) }];
        for (let turn = 0; turn < opts.turns; turn++) {
          history.push({ role: "user", content: userTurn(c, turn, opts.turnTokens) });
          const via = gateways[sent++ % gateways.length] ?? gateway;
          const response = await fetch(`${via.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model: MODEL_ID, messages: history, max_tokens: 16, temperature: 0 }),
          });
          if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
          const body = Usage.parse(await response.json());
          history.push({ role: "assistant", content: body.choices[0]?.message.content ?? "" });
          prompt += body.usage.prompt_tokens;
          computed += body.usage.prompt_tokens - body.usage.prompt_tokens_details.cached_tokens;
        }
      }),
    );
    return { prompt, computed };
  } finally {
    for (const each of gateways) await each.stop();
    await Promise.all(neurons.map((neuron) => neuron.stop()));
  }
}

configureLogging({ level: "warn", format: "text" });
const modelPath = await ensureModel(MODEL_ID);
const modelFile = modelPath.slice(resolve(MODELS_DIR).length + 1);
console.error(
  `model ${MODELS[MODEL_ID].description}; 2 neurons × ${opts.slots} slots, ${opts.threads} thread(s) each; ` +
    `${opts.conversations} concurrent conversations × ${opts.turns} turns, ~${opts.prefixTokens}-token prefixes`,
);
const leastBusy = await run(false, modelFile);
console.error(`least-busy: computed ${leastBusy.computed} of ${leastBusy.prompt}`);
const cacheAware = await run(true, modelFile);
console.error(`cache-aware: computed ${cacheAware.computed} of ${cacheAware.prompt}`);
const twoReplicas = await run(true, modelFile, 2);
console.error(
  `cache-aware, 2 gateways round-robin: computed ${twoReplicas.computed} of ${twoReplicas.prompt}`,
);
const hitRate = (run: { prompt: number; computed: number }) => (run.prompt - run.computed) / run.prompt;
console.log(
  `prompt tokens computed: cache-aware ${cacheAware.computed} of ${cacheAware.prompt}, least-busy ${leastBusy.computed} of ${leastBusy.prompt} ` +
    `(cache-aware ÷ least-busy ${fixed(cacheAware.computed / leastBusy.computed, 2)})`,
);
console.log(
  `cache-hit rate: 1 gateway ${fixed(hitRate(cacheAware), 3)}, 2 gateways round-robin ${fixed(hitRate(twoReplicas), 3)} ` +
    `(2 ÷ 1 = ${fixed(hitRate(twoReplicas) / hitRate(cacheAware), 2)}; target >= 0.9)`,
);
