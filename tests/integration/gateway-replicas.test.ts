/**
 * Two gateway replicas in front of one fleet, sharing nothing but the
 * neurons: what one does must not undo what the other did.
 * - Both ask one neuron to load the same model at once: one load (the
 *   neuron joins a load in progress).
 * - A neuron with room for one model, each replica serving a different one
 *   at the same time: every request is answered, each causes at most one
 *   load (no eviction ping-pong), and once the demand stops the loads stop.
 * - Conversations sent round-robin through both replicas land where their
 *   prefix is cached, as with one gateway (rendezvous routing).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chat } from "./helpers/gateway-requests.ts";
import { configToml, loadCount, profile, RealFleet, type TestGateway } from "./helpers/real-fleet.ts";

const MiB = 1024 * 1024;
let fleet: RealFleet;
let one: [TestGateway, TestGateway];
let two: [TestGateway, TestGateway];

beforeAll(async () => {
  fleet = await RealFleet.start([
    // Room for one 48 MiB model only (see FLEET_SIZING): a second one evicts the first.
    { name: "small", files: ["a.gguf", "b.gguf"], memoryLimit: 80 * MiB },
    { name: "x", files: ["c.gguf"] },
    { name: "y", files: ["c.gguf"] },
  ]);
  const toml = configToml({
    models: [
      profile("a", "a.gguf", { affinity: ["small"] }),
      profile("b", "b.gguf", { affinity: ["small"] }),
      profile("c", "c.gguf", { affinity: ["x", "y"] }),
    ],
  });
  one = [await fleet.gateway({ toml }), await fleet.gateway({ toml })];
  two = one;
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
});

async function ok(response: Promise<Response>): Promise<string> {
  const answer = await response;
  const body = await answer.text();
  if (!answer.ok) throw new Error(`${answer.status} ${body}`);
  return body;
}

/**
 * A request sent again while the gateway answers 503 (the room is held by a
 * model another replica is using), as the SDKs retry; any other error fails.
 * Resolves with how many 503s it took.
 */
async function untilServed(send: () => Promise<Response>): Promise<number> {
  for (let refused = 0; refused < 500; refused++) {
    const answer = await send();
    const body = await answer.text();
    if (answer.ok) return refused;
    if (answer.status !== 503 || answer.headers.get("retry-after") === null)
      throw new Error(`${answer.status} ${body}`);
  }
  throw new Error("still refused after 500 tries");
}

test("two replicas loading one model on one neuron at once: one load", async () => {
  const url = fleet.neuron("small").url;
  const before = await loadCount(url, "a");
  await Promise.all([ok(chat(one[0].url, "a")), ok(chat(one[1].url, "a"))]);
  expect(await loadCount(url, "a")).toBe(before + 1);
});

test("replicas serving two models that cannot share a node: every request answered, no eviction loop", async () => {
  const url = fleet.neuron("small").url;
  const loadsBefore = (await loadCount(url, "a")) + (await loadCount(url, "b"));
  const rounds = 4;
  // Replica 0 serves a, replica 1 serves b, at the same time, one request after another. While
  // one model is busy the other's request is told to retry (503 + Retry-After), never failed.
  await Promise.all(
    (["a", "b"] as const).map(async (model, i) => {
      for (let round = 0; round < rounds; round++) await untilServed(() => chat(two[i]?.url ?? "", model));
    }),
  );
  const loads = (await loadCount(url, "a")) + (await loadCount(url, "b")) - loadsBefore;
  // Each request may need its model loaded (the demand alternates), never more than once.
  expect(loads).toBeLessThanOrEqual(2 * rounds);
  // Demand stopped: both replicas' background passes change nothing.
  const settled = (await loadCount(url, "a")) + (await loadCount(url, "b"));
  await Promise.all(two.map((gateway) => gateway.running.evictNow()));
  await Promise.all(two.map((gateway) => gateway.running.evictNow()));
  expect((await loadCount(url, "a")) + (await loadCount(url, "b"))).toBe(settled);
});

test("a conversation sent round-robin through both replicas stays on one node", async () => {
  // c is loaded on both x and y: where each turn goes is the routing's choice.
  await Promise.all(
    ["x", "y"].map((node) =>
      fetch(`${one[0].url}/admin/models/load`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "c", node }),
      }).then((response) => expect(response.ok).toBe(true)),
    ),
  );
  const served = async (node: string) =>
    Number(
      (await (await fetch(`${fleet.neuron(node).url}/metrics`)).text()).match(
        /cortex_neuron_sequences_finished_total\{[^}]*model="c"[^}]*\} (\d+)/,
      )?.[1] ?? 0,
    );
  const split: number[] = [];
  for (let conversation = 0; conversation < 6; conversation++) {
    const before = { x: await served("x"), y: await served("y") };
    // A system prompt of its own: no node holds any of this conversation before its first turn.
    const messages: Array<{ role: string; content: string }> = [
      { role: "system", content: `You are assistant number ${conversation}.` },
    ];
    for (let turn = 0; turn < 4; turn++) {
      messages.push({ role: "user", content: `Conversation ${conversation}, turn ${turn}.` });
      const body = JSON.parse(
        await ok(
          fetch(`${one[turn % 2]?.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model: "c", messages, max_tokens: 4, temperature: 0 }),
          }),
        ),
      ) as { choices: Array<{ message: { content: string } }> };
      messages.push({ role: "assistant", content: body.choices[0]?.message.content ?? "" });
    }
    const onX = (await served("x")) - before.x;
    const onY = (await served("y")) - before.y;
    // All four turns on one node, whichever replica sent them.
    expect([onX, onY].sort()).toEqual([0, 4]);
    split.push(onX);
  }
  // And the conversations themselves spread over both nodes.
  expect(split.some((count) => count === 4) && split.some((count) => count === 0)).toBe(true);
});
