/**
 * Conversation → node affinity shared through Redis (`[state] redis_url`):
 * - the store itself (state/redis-conversation-homes.ts) on a real
 *   redis-server: what one replica records another reads, with an expiry;
 *   a Redis that stops answering costs a lookup its short timeout once, then
 *   nothing until the back-off passes, and it is used again once it answers;
 * - two real gateway replicas with real neurons, requests alternating between
 *   them: a conversation whose first turn went where its rendezvous hash would
 *   not send it (the only copy then) stays there once a second copy appears,
 *   new conversations spread over both nodes and each stays on one, a
 *   replica that has not polled a copy another replica loaded still sends
 *   the conversations placed there back to it, and with Redis gone every
 *   turn is still answered.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { configureLogging } from "../../src/core/logger.ts";
import { RedisConnection } from "../../src/gateway/state/redis-connection.ts";
import { RedisConversationHomes } from "../../src/gateway/state/redis-conversation-homes.ts";
import { type RedisServer, redisSkipReason, startRedis } from "./helpers/redis-server.ts";
import {
  configToml,
  profile,
  RealFleet,
  servedCount,
  type TestGateway,
  waitForFleet,
} from "./helpers/real-fleet.ts";

if (redisSkipReason !== undefined)
  console.warn(`skipping the shared conversation affinity tests: ${redisSkipReason}`);

let redis: RedisServer;
let fleet: RealFleet;
let replicas: [TestGateway, TestGateway];

beforeAll(async () => {
  if (redisSkipReason !== undefined) return;
  redis = await startRedis();
  fleet = await RealFleet.start([
    { name: "x", files: ["c.gguf"] },
    { name: "y", files: ["c.gguf"] },
  ]);
  const toml = configToml({
    state: { redis_url: redis.url, key_prefix: "homes:", timeout_s: 2 },
    models: [profile("c", "c.gguf")],
  });
  replicas = [await fleet.gateway({ toml }), await fleet.gateway({ toml })];
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
  await redis?.dispose();
});

describe.skipIf(redisSkipReason !== undefined)("the shared record of each conversation's node", () => {
  const options = { prefix: "store:", ttlMs: 60_000, timeoutMs: 100, retryAfterMs: 1_000 };

  test("what one replica records, another reads; unknown is undefined; every record expires", async () => {
    const [a, b] = [1, 2].map(() => new RedisConnection({ url: redis.url, timeoutMs: 2000 }));
    if (a === undefined || b === undefined) throw new Error("unreachable");
    await Promise.all([a.start(), b.start()]);
    const mine = new RedisConversationHomes(a, options);
    const theirs = new RedisConversationHomes(b, options);
    mine.record(42n, "n1");
    // record() returns at once; the write lands in order on mine's connection.
    expect(await mine.lookup(42n)).toBe("n1");
    expect(await theirs.lookup(42n)).toBe("n1");
    theirs.record(42n, "n2");
    expect(await theirs.lookup(42n)).toBe("n2");
    expect(await mine.lookup(42n)).toBe("n2");
    expect(await mine.lookup(43n)).toBeUndefined();
    const probe = new RedisClient(redis.url);
    const keys = (await probe.send("KEYS", ["store:home:*"])) as string[];
    expect(keys.length).toBe(1);
    const ttl = (await probe.send("PTTL", [keys[0] as string])) as number;
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    probe.close();
    a.close();
    b.close();
  });

  /** The state store's log lines while `body` runs, as JSON objects. */
  async function stateLog(body: () => Promise<void>): Promise<Array<{ level: string; msg: string }>> {
    const lines: Array<{ level: string; msg: string; tag?: string }> = [];
    configureLogging({ level: "info", format: "json", write: (line) => lines.push(JSON.parse(line)) });
    try {
      await body();
    } finally {
      configureLogging({ level: "warn", format: "text" });
    }
    return lines.filter((line) => line.tag === "state");
  }

  test("a Redis that stops answering: unknown, then left alone until the back-off passes, then used again; one ERROR, one line when back", async () => {
    const connection = new RedisConnection({ url: redis.url, timeoutMs: 2000 });
    await connection.start();
    let now = 0;
    const homes = new RedisConversationHomes(connection, { ...options, now: () => now });
    homes.record(7n, "n1");
    expect(await homes.lookup(7n)).toBe("n1");
    const lines = await stateLog(async () => {
      redis.pause();
      try {
        // Answered by the 100 ms lookup bound, not [state] timeout_s.
        expect(await homes.lookup(7n)).toBeUndefined();
      } finally {
        redis.resume();
      }
      // Within the back-off Redis is not asked, though it answers again.
      now += 999;
      expect(await homes.lookup(7n)).toBeUndefined();
      now += 1;
      expect(await homes.lookup(7n)).toBe("n1");
    });
    expect(lines.map((line) => line.level)).toEqual(["error", "info"]);
    expect(lines[0]?.msg).toContain("did not answer for conversation routing (no answer within 0.1 s)");
    expect(lines[1]?.msg).toContain("answers again");
    connection.close();
  });

  test("a record on its way or a lookup while the gateway shuts down is no outage: nothing logged", async () => {
    const connection = new RedisConnection({ url: redis.url, timeoutMs: 2000 });
    await connection.start();
    const homes = new RedisConversationHomes(connection, options);
    const closed = new Promise<void>((resolve) =>
      connection.onStateChange((state) => state === "closed" && resolve()),
    );
    const lines = await stateLog(async () => {
      homes.record(8n, "n1");
      connection.close();
      await closed;
      // The write's failure settles after the close; a lookup after it proves it did.
      expect(await homes.lookup(8n)).toBeUndefined();
    });
    expect(lines.filter((line) => line.level === "error")).toEqual([]);
  });
});

describe.skipIf(redisSkipReason !== undefined)("two gateway replicas sharing Redis, round-robin", () => {
  const load = (node: string) =>
    fetch(`${replicas[0].url}/admin/models/load`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "c", node }),
    }).then((response) => expect(response.ok).toBe(true));
  /** Both replicas see `c` ready on exactly `nodes`. */
  const bothSee = (nodes: string[]) =>
    Promise.all(
      replicas.map((replica) =>
        waitForFleet(replica, (fleetNodes) =>
          fleetNodes.every(
            (node) =>
              node.loaded.some((model) => model.id === "c" && model.state === "ready") ===
              nodes.includes(node.name),
          ),
        ),
      ),
    );
  const served = async () => ({
    x: await servedCount(fleet.neuron("x").url, "c"),
    y: await servedCount(fleet.neuron("y").url, "c"),
  });

  class Conversation {
    readonly messages: Array<{ role: string; content: string }>;
    constructor(readonly name: string) {
      // A system prompt of its own: no node holds any of it before its first turn.
      this.messages = [{ role: "system", content: `You are assistant ${name}.` }];
    }
    /** The next turn, through `replica`. */
    async turn(replica: TestGateway): Promise<void> {
      this.messages.push({ role: "user", content: `${this.name}, turn ${this.messages.length}.` });
      const response = await fetch(`${replica.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "c", messages: this.messages, max_tokens: 4, temperature: 0 }),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${response.status} ${text}`);
      const body = JSON.parse(text) as { choices: Array<{ message: { content: string } }> };
      this.messages.push({ role: "assistant", content: body.choices[0]?.message.content ?? "" });
    }
  }

  test("a conversation begun where only one copy was stays there once a second copy is loaded", async () => {
    await load("x");
    await bothSee(["x"]);
    const conversations = Array.from({ length: 6 }, (_, i) => new Conversation(`early ${i}`));
    for (const conversation of conversations) await conversation.turn(replicas[0]);
    await load("y");
    await bothSee(["x", "y"]);
    const before = await served();
    // Replica 1 never served these: without the shared record it would place each by its
    // rendezvous hash, which sends about half of them to y.
    for (const conversation of conversations)
      for (let turn = 1; turn < 4; turn++) await conversation.turn(replicas[turn % 2 === 1 ? 1 : 0]);
    const after = await served();
    expect(after.y - before.y).toBe(0);
    expect(after.x - before.x).toBe(conversations.length * 3);
  });

  test("new conversations spread over both nodes, and each stays on one", async () => {
    await bothSee(["x", "y"]);
    const split: number[] = [];
    for (let i = 0; i < 6; i++) {
      const conversation = new Conversation(`late ${i}`);
      const before = await served();
      for (let turn = 0; turn < 4; turn++) await conversation.turn(replicas[turn % 2 === 0 ? 0 : 1]);
      const after = await served();
      const onX = after.x - before.x;
      expect([onX, after.y - before.y].sort()).toEqual([0, 4]);
      split.push(onX);
    }
    expect(split).toContain(4);
    expect(split).toContain(0);
  });

  test("a replica that has not polled the copy another replica just loaded reads that node before routing", async () => {
    const admin = (path: string, body: Record<string, unknown>) =>
      fetch(`${replicas[0].url}/admin/models/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "c", ...body }),
      }).then((response) => expect(response.ok).toBe(true));
    await admin("unload", { node: "y", force: true });
    await bothSee(["x"]);
    // Its first poll sees c on x only, and it does not poll again during this test.
    const slow = await fleet.gateway({
      toml: configToml({
        gateway: { poll_interval_ms: 600_000 },
        state: { redis_url: redis.url, key_prefix: "homes:", timeout_s: 2 },
        models: [profile("c", "c.gguf")],
      }),
    });
    try {
      await admin("load", { node: "y" });
      await waitForFleet(replicas[0], (nodes) =>
        nodes.every((node) => node.loaded.some((model) => model.id === "c" && model.state === "ready")),
      );
      const conversations = Array.from({ length: 6 }, (_, i) => new Conversation(`catch-up ${i}`));
      const first: Array<"x" | "y"> = [];
      for (const conversation of conversations) {
        const before = await served();
        await conversation.turn(replicas[0]);
        first.push((await served()).y > before.y ? "y" : "x");
      }
      // Replica 0 placed some on y's new copy, which the slow replica has not seen.
      expect(first).toContain("y");
      for (const [i, conversation] of conversations.entries()) {
        const before = await served();
        await conversation.turn(slow);
        const after = await served();
        expect({ conversation: i, on: after.y > before.y ? "y" : "x" }).toEqual({
          conversation: i,
          on: first[i] as string,
        });
      }
    } finally {
      await slow.stop();
    }
  });

  test("with Redis gone every turn is still answered", async () => {
    await redis.stop();
    const conversation = new Conversation("outage");
    try {
      for (let turn = 0; turn < 4; turn++) await conversation.turn(replicas[turn % 2 === 0 ? 0 : 1]);
    } finally {
      await redis.start();
    }
  });
});
