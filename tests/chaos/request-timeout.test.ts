/**
 * Issue 18 §7: `gateway.request_timeout_s` bounded only the wait for a load,
 * though cortex.example.toml promised "one request end to end": a node that
 * took the request and then said nothing held it for as long as TCP allowed.
 * Now it bounds the whole request: 504 before the first byte, an error event
 * after it, in each dialect.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chat, messages, readSse } from "../integration/helpers/gateway-requests.ts";
import { configToml, RealFleet, type TestGateway } from "../integration/helpers/real-fleet.ts";
import { type ScriptedNeuron, startScriptedNeuron } from "./helpers/scripted-neuron.ts";

let fleet: RealFleet;
let gateway: TestGateway;
let neuron: ScriptedNeuron;

beforeAll(async () => {
  fleet = await RealFleet.start([]);
  neuron = startScriptedNeuron("slow");
  gateway = await fleet.gateway({
    // The read timeout is far away: only the request's own deadline can end these.
    toml: configToml({
      gateway: { request_timeout_s: 0.3, upstream_read_timeout_s: 600 },
      models: [{ id: "m", file: "m.gguf" }],
    }),
    external: [{ name: neuron.name, endpoint: neuron.url }],
  });
}, 60_000);

afterAll(async () => {
  neuron?.stop();
  await fleet?.stop();
});

test("a chat the node never answers is a 504 naming request_timeout_s", async () => {
  neuron.script(() => "silent");
  const response = await chat(gateway.url, "m");
  expect(response.status).toBe(504);
  const body = (await response.json()) as { error: { message: string } };
  expect(body.error.message).toContain("gateway.request_timeout_s");
});

test("a relayed stream that outlives it ends with an error event", async () => {
  neuron.script(() => "first-then-silent");
  const response = await chat(gateway.url, "m", { stream: true });
  expect(response.status).toBe(200);
  const frames = await readSse(response);
  expect(frames[0]?.data).toContain('"Hi"');
  expect(frames.at(-1)?.data).toContain("gateway.request_timeout_s");
});

test("a translated (Anthropic) stream that outlives it ends with an error event", async () => {
  neuron.script(() => "first-then-silent");
  const response = await messages(gateway.url, "m", { stream: true });
  expect(response.status).toBe(200);
  const frames = await readSse(response);
  const last = frames.at(-1);
  expect(last?.event).toBe("error");
  expect(last?.data).toContain("gateway.request_timeout_s");
});

test("embeddings the node never answers are a 504 naming request_timeout_s", async () => {
  const response = await fetch(`${gateway.url}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", input: "hello" }),
  });
  expect(response.status).toBe(504);
  const body = (await response.json()) as { error: { message: string } };
  expect(body.error.message).toContain("gateway.request_timeout_s");
});
