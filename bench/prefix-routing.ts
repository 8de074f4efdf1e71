/**
 * Cache-aware routing through the gateway: the agent trace (agent-trace.ts)
 * against a gateway over two neurons that both have the model loaded, once
 * with `routing.cache_affinity = false` (least-busy routing) and once with
 * it on, each on fresh neurons. Conversations run concurrently (each turn
 * after the previous one of its conversation), so least-busy routing spreads
 * a conversation's turns over both nodes. Prints the prompt tokens the
 * neurons computed (usage prompt_tokens − cached_tokens) in each mode and
 * their ratio. Then cache-aware routing through two gateway replicas,
 * requests alternating between them (round-robin, as behind one Kubernetes
 * Service): its cache-hit rate (cached ÷ prompt tokens) against one
 * gateway's, with the replicas sharing nothing (rendezvous hashing and each
 * one's memory) and sharing each conversation's node through a real
 * redis-server (`[state] redis_url`; .cache/redis, as `npm test` fetches it).
 * Each two-replica variant runs twice: the trace starting once every replica
 * sees both copies loaded ("settled"), and as soon as the replica that loaded
 * them has ("fresh": the other learns of the second copy at its next poll, as
 * after a load on demand).
 *
 *   bun bench/prefix-routing.ts                     # 4 conversations × 4 turns, ~800-token prefixes
 *   bun bench/prefix-routing.ts --trace             # also each turn's node, per run
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
import { redisSkipReason, startRedis } from "../tests/integration/helpers/redis-server.ts";
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
    trace: { type: "boolean", default: false },
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

interface Variant {
  cacheAffinity: boolean;
  replicas?: number;
  /** Shared state for the replicas (`[state] redis_url`). */
  redisUrl?: string | undefined;
  /** Start the trace once every replica sees both copies (else once the first one does). */
  settled?: boolean;
}

/** How many chat requests a neuron has finished (its /metrics), to tell which node served a turn. */
async function finished(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(/^cortex_neuron_sequences_finished_total\{[^}]*\} (\d+)/gm)].reduce(
    (sum, match) => sum + Number(match[1]),
    0,
  );
}

const FleetBody = z.object({
  nodes: z.array(
    z.object({ name: z.string(), loaded: z.array(z.object({ id: z.string(), state: z.string() })) }),
  ),
});

async function run(variant: Variant, modelFile: string): Promise<{ prompt: number; computed: number }> {
  const { cacheAffinity, replicas = 1, redisUrl, settled = false } = variant;
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
      ...(redisUrl === undefined
        ? {}
        : { state: { redis_url: redisUrl, key_prefix: `bench-${Date.now()}:` } }),
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
    if (settled)
      for (const each of gateways)
        await waitUntil("every replica sees both copies", async () => {
          const { nodes } = FleetBody.parse(await (await fetch(`${each.url}/admin/fleet`)).json());
          return nodes.every((node) => node.loaded.some((m) => m.id === MODEL_ID && m.state === "ready"));
        });
    let prompt = 0;
    let computed = 0;
    // With --trace the turns run one at a time (conversation order kept), so a neuron's count says which node served each.
    let sequential = Promise.resolve();
    await Promise.all(
      Array.from({ length: opts.conversations }, async (_, c) => {
        const history: TraceMessage[] = [{ role: "system", content: systemPrompt(c, opts.prefixTokens) }];
        for (let turn = 0; turn < opts.turns; turn++) {
          history.push({ role: "user", content: userTurn(c, turn, opts.turnTokens) });
          const replica = sent++ % gateways.length;
          const via = gateways[replica] ?? gateway;
          const send = async () => {
            const before = args.trace ? await Promise.all(neurons.map((n) => finished(n.url))) : [];
            const response = await fetch(`${via.url}/v1/chat/completions`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ model: MODEL_ID, messages: history, max_tokens: 16, temperature: 0 }),
            });
            if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
            const body = Usage.parse(await response.json());
            if (args.trace) {
              const after = await Promise.all(neurons.map((n) => finished(n.url)));
              const node = after.findIndex((count, i) => count > (before[i] ?? 0));
              console.error(
                `  conversation ${c} turn ${turn} via gateway ${replica + 1} → n${node + 1}: ` +
                  `cached ${body.usage.prompt_tokens_details.cached_tokens} of ${body.usage.prompt_tokens}`,
              );
            }
            return body;
          };
          let body: z.infer<typeof Usage>;
          if (args.trace) {
            const mine = sequential.then(send);
            sequential = mine.then(() => undefined);
            body = await mine;
          } else body = await send();
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
if (redisSkipReason !== undefined) console.error(`no shared-state runs: ${redisSkipReason}`);
const redis = redisSkipReason === undefined ? await startRedis() : undefined;
try {
  const leastBusy = await run({ cacheAffinity: false }, modelFile);
  console.error(`least-busy: computed ${leastBusy.computed} of ${leastBusy.prompt}`);
  const cacheAware = await run({ cacheAffinity: true }, modelFile);
  console.error(`cache-aware: computed ${cacheAware.computed} of ${cacheAware.prompt}`);
  const hitRate = (run: { prompt: number; computed: number }) => (run.prompt - run.computed) / run.prompt;
  const lines: string[] = [];
  for (const settled of [true, false])
    for (const redisUrl of redis === undefined ? [undefined] : [undefined, redis.url]) {
      const label = `2 gateways round-robin, ${redisUrl === undefined ? "nothing shared" : "Redis shared"}, ${settled ? "settled" : "fresh"}`;
      const result = await run({ cacheAffinity: true, replicas: 2, redisUrl, settled }, modelFile);
      console.error(`${label}: computed ${result.computed} of ${result.prompt}`);
      lines.push(
        `  ${label}: ${fixed(hitRate(result), 3)} (÷ 1 gateway = ${fixed(hitRate(result) / hitRate(cacheAware), 2)}; target >= 0.9)`,
      );
    }
  console.log(
    `prompt tokens computed: cache-aware ${cacheAware.computed} of ${cacheAware.prompt}, least-busy ${leastBusy.computed} of ${leastBusy.prompt} ` +
      `(cache-aware ÷ least-busy ${fixed(cacheAware.computed / leastBusy.computed, 2)})`,
  );
  console.log(`cache-hit rate: 1 gateway ${fixed(hitRate(cacheAware), 3)}`);
  for (const line of lines) console.log(line);
} finally {
  await redis?.dispose();
}
