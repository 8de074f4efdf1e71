/**
 * Issue 18 §3: a frozen neuron (SIGSTOP, a hung host) held its requests for
 * minutes though the fleet marked it down within seconds. Now a request on a
 * node marked down, or silent past gateway.upstream_read_timeout_s, ends:
 * retried on another node before its first byte, an error event after it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chat, readSse } from "../integration/helpers/gateway-requests.ts";
import { configToml, RealFleet, type TestGateway } from "../integration/helpers/real-fleet.ts";
import { type ScriptedNeuron, startScriptedNeuron } from "./helpers/scripted-neuron.ts";

let fleet: RealFleet;
let quick: TestGateway;
let patient: TestGateway;
let a: ScriptedNeuron;
let b: ScriptedNeuron;
let frozen: ScriptedNeuron;

beforeAll(async () => {
  fleet = await RealFleet.start([]);
  a = startScriptedNeuron("a");
  b = startScriptedNeuron("b");
  frozen = startScriptedNeuron("frozen");
  const models = [{ id: "m", file: "m.gguf" }];
  quick = await fleet.gateway({
    toml: configToml({ gateway: { upstream_read_timeout_s: 0.3 }, models }),
    external: [a, b].map((n) => ({ name: n.name, endpoint: n.url })),
  });
  // Reads may wait 10 minutes here: only the node's mark-down can end them.
  patient = await fleet.gateway({
    toml: configToml({ gateway: { upstream_read_timeout_s: 600, request_timeout_s: 600 }, models }),
    external: [{ name: frozen.name, endpoint: frozen.url }],
  });
}, 60_000);

afterAll(async () => {
  for (const neuron of [a, b, frozen]) neuron?.stop();
  await fleet?.stop();
});

test("a node silent before its first byte: the chat is retried on another node", async () => {
  // The first chat either node gets is never answered; the retry is.
  let seen = 0;
  const script = () => (++seen === 1 ? "silent" : "answer");
  a.script(script);
  b.script(script);
  const response = await chat(quick.url, "m", { stream: true });
  expect(response.status).toBe(200);
  const frames = await readSse(response);
  expect(frames.at(-1)?.data).toBe("[DONE]");
  expect(a.chats()).toBe(1);
  expect(b.chats()).toBe(1);
});

test("a non-streamed chat on a silent node is retried too", async () => {
  let seen = 0;
  const script = () => (++seen === 1 ? "silent" : "answer");
  a.script(script);
  b.script(script);
  const response = await chat(quick.url, "m");
  expect(response.status).toBe(200);
  expect(seen).toBe(2);
});

test("a stream whose node goes silent mid-answer ends with an error event naming the timeout", async () => {
  a.script(() => "first-then-silent");
  b.script(() => "first-then-silent");
  const response = await chat(quick.url, "m", { stream: true });
  expect(response.status).toBe(200);
  const frames = await readSse(response);
  expect(frames[0]?.data).toContain('"Hi"');
  expect(frames.at(-1)?.data).toContain("gateway.upstream_read_timeout_s");
});

test("a stream on a node that freezes ends when the fleet marks the node down", async () => {
  frozen.script(() => "first-then-silent");
  const response = await chat(patient.url, "m", { stream: true });
  expect(response.status).toBe(200);
  frozen.freeze();
  // The polls fail and mark it down; the stream ends then, not when TCP gives up.
  const frames = await readSse(response, 30_000);
  expect(frames.at(-1)?.data).toContain("marked down");
}, 40_000);
