/**
 * Issue 18 §1: a GGUF whose header breaks llama.cpp's limits
 * (`llama.block_count = 1000000` made libllama abort the neuron), and a
 * gateway that then tried the same load on every other node, taking each
 * one down in turn.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { gv, writeGguf } from "../../src/neuron/gguf/gguf-writer.ts";
import { buildTinyModel } from "../../src/neuron/gguf/tiny-model.ts";
import { chat, messages } from "../integration/helpers/gateway-requests.ts";
import {
  configToml,
  fleetNodes,
  loadedIds,
  RealFleet,
  type TestGateway,
} from "../integration/helpers/real-fleet.ts";
import { type CrashingNeuron, startCrashingNeuron } from "./helpers/crashing-neuron.ts";

let fleet: RealFleet;
let gateway: TestGateway;
let crashers: CrashingNeuron[] = [];

/** The tiny model with one header value replaced. */
async function writeTinyWith(path: string, key: string, value: ReturnType<typeof gv.u32>): Promise<void> {
  const { spec } = buildTinyModel();
  const metadata = spec.metadata.map(([name, old]) => [name, name === key ? value : old] as const);
  await writeGguf(path, { ...spec, metadata });
}

beforeAll(async () => {
  fleet = await RealFleet.start([
    { name: "n1", files: ["good.gguf"] },
    { name: "n2", files: ["good.gguf"] },
  ]);
  for (const name of ["n1", "n2"]) {
    await writeTinyWith(join(fleet.dir, name, "layers.gguf"), "llama.block_count", gv.u32(1_000_000));
    await writeTinyWith(join(fleet.dir, name, "heads.gguf"), "llama.attention.head_count", gv.u64(2n ** 40n));
  }
  crashers = [startCrashingNeuron("c1", "crash.gguf"), startCrashingNeuron("c2", "crash.gguf")];
  gateway = await fleet.gateway({
    toml: configToml({
      models: [
        { id: "broken", file: "layers.gguf" },
        { id: "crasher", file: "crash.gguf" },
      ],
    }),
    external: crashers.map((crasher) => ({ name: crasher.name, endpoint: crasher.url })),
  });
}, 60_000);

afterAll(async () => {
  for (const crasher of crashers) crasher.stop();
  await fleet?.stop();
});

test("a neuron refuses a file past llama.cpp's limits with the reason, and stays up", async () => {
  const neuron = fleet.neuron("n1").url;
  for (const [file, reason] of [
    ["layers.gguf", "llama.block_count = 1000000: llama.cpp allows 1 to 512 layers"],
    ["heads.gguf", "llama.attention.head_count = 1099511627776: expected an integer from 0 to 4294967295"],
  ] as const) {
    const response = await fetch(`${neuron}/models/load`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ file }),
    });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("invalid_model_file");
    expect(body.error.message).toContain(reason);
  }
  expect((await fetch(`${neuron}/health`)).status).toBe(200);
  const good = await fetch(`${neuron}/models/load`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ file: "good.gguf" }),
  });
  expect(good.ok).toBe(true);
  expect(await loadedIds(neuron)).toEqual(["good"]);
});

test("through the gateway: a 502 naming the reason in each dialect, every node still up", async () => {
  const openai = await chat(gateway.url, "broken");
  expect(openai.status).toBe(502);
  const openaiBody = (await openai.json()) as { error: { message: string; code: string } };
  expect(openaiBody.error.message).toContain("llama.block_count = 1000000");
  expect(openaiBody.error.code).toBe("load_failed");

  const anthropic = await messages(gateway.url, "broken");
  expect(anthropic.status).toBe(500);
  const anthropicBody = (await anthropic.json()) as {
    type: string;
    error: { type: string; message: string };
  };
  expect(anthropicBody.type).toBe("error");
  expect(anthropicBody.error.message).toContain("llama.block_count = 1000000");

  const nodes = await fleetNodes(gateway.url);
  expect(nodes.filter((node) => node.name.startsWith("n")).map((node) => node.state)).toEqual(["up", "up"]);
});

test("a neuron that dies during a load: no other node is tried, and later loads are held", async () => {
  const first = await chat(gateway.url, "crasher");
  expect(first.status).toBe(502);
  expect(((await first.json()) as { error: { message: string } }).error.message).toContain(
    "not tried on other nodes",
  );
  expect(crashers.map((crasher) => crasher.loads()).reduce((a, b) => a + b)).toBe(1);

  const again = await chat(gateway.url, "crasher");
  expect(again.status).toBe(502);
  expect(again.headers.get("retry-after")).not.toBeNull();
  expect(crashers.map((crasher) => crasher.loads()).reduce((a, b) => a + b)).toBe(1);
});
