/**
 * Issue 18 §15, the rest: the metrics port and /docs were open with no way
 * to close them; a missing models_dir was silently an empty fleet; each CPU
 * device reported the whole machine's memory; a prompt whose byte length
 * alone proves it over the context was tokenized whole first.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { totalmem, tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../src/core/config/config-error.ts";
import { NeuronSection } from "../../src/core/config/config-schema.ts";
import { deviceSpecs } from "../../src/neuron/engine/device-discovery.ts";
import { DevicePool } from "../../src/neuron/engine/device-pool.ts";
import type { GenerationEvent } from "../../src/neuron/engine/types.ts";
import { ensureDemoModel } from "../../src/neuron/gguf/tiny-model.ts";
import { startNeuron } from "../../src/neuron/start-neuron.ts";
import { configToml, RealFleet } from "../integration/helpers/real-fleet.ts";
import { type ScriptedNeuron, startScriptedNeuron } from "./helpers/scripted-neuron.ts";

let fleet: RealFleet;
let neuron: ScriptedNeuron;
let external: { name: string; endpoint: string }[];

beforeAll(async () => {
  fleet = await RealFleet.start([]);
  neuron = startScriptedNeuron("node");
  external = [{ name: neuron.name, endpoint: neuron.url }];
}, 60_000);

afterAll(async () => {
  neuron?.stop();
  await fleet?.stop();
});

test("/docs can be put behind the API keys, or turned off", async () => {
  const keyed = await fleet.gateway({
    toml: configToml({ gateway: { api_keys: ["k1"], docs: "api_key" } }),
    external,
  });
  expect((await fetch(`${keyed.url}/docs/json`)).status).toBe(401);
  const withKey = await fetch(`${keyed.url}/docs/json`, { headers: { authorization: "Bearer k1" } });
  expect(withKey.status).toBe(200);
  // The plugin loads on this first request (api-docs.ts), and still describes the gateway's own routes.
  const spec = (await withKey.json()) as { paths: Record<string, unknown> };
  expect(Object.keys(spec.paths)).toContain("/v1/chat/completions");
  expect(Object.keys(spec.paths)).not.toContain("/docs/json");
  const off = await fleet.gateway({ toml: configToml({ gateway: { docs: "off" } }), external });
  expect((await fetch(`${off.url}/docs/json`)).status).toBe(404);
});

test("the metrics port can ask for a bearer token", async () => {
  const gateway = await fleet.gateway({
    toml: configToml({
      gateway: { metrics: true, metrics_listen: "127.0.0.1:0", metrics_token: "m1" },
    }),
    external,
  });
  const url = gateway.running.metricsUrl ?? "";
  expect((await fetch(url)).status).toBe(401);
  expect((await fetch(url, { headers: { authorization: "Bearer m1" } })).status).toBe(200);
});

test("a models_dir that does not exist stops the neuron at start, naming the key and path", async () => {
  const missing = join(mkdtempSync(join(tmpdir(), "cortex-missing-")), "no-such-dir");
  let error: unknown;
  try {
    const neuron = await startNeuron({
      config: NeuronSection.parse({ models_dir: missing }),
      listen: { hostname: "127.0.0.1", port: 0 },
    });
    await neuron.stop();
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(ConfigError);
  expect(String(error)).toContain(`neuron.models_dir "${missing}": no such directory`);
});

test("CPU devices share the machine's memory instead of each reporting all of it", () => {
  const specs = deviceSpecs({ cuda: [], cpuDevices: 4 });
  const total = specs.reduce((sum, spec) => sum + spec.memoryTotal, 0);
  expect(specs).toHaveLength(4);
  expect(total).toBeLessThanOrEqual(totalmem());
});

test("a prompt whose byte length alone exceeds the context is refused without tokenizing it", async () => {
  const pool = await DevicePool.start({ threads: 1 });
  try {
    await pool.load({
      id: "tiny",
      path: await ensureDemoModel("tests/.tmp/models"),
      contextSize: 256,
      slots: 1,
    });
    const events: GenerationEvent[] = [];
    for await (const event of pool.generate("tiny", { prompt: "garden ".repeat(200_000), maxTokens: 4 }))
      events.push(event);
    const last = events.at(-1);
    expect(last?.type).toBe("error");
    const error = last?.type === "error" ? last.error : undefined;
    expect(error?.code).toBe("context_length_exceeded");
    expect(error?.message).toContain("at least");
  } finally {
    await pool.close();
  }
});
