/**
 * Two `cortex serve` gateways (separate processes, as replicas behind a load
 * balancer) sharing one Redis (`[state] redis_url`) and one real neuron: a
 * conversation started on one continues on the other, through the official
 * OpenAI SDK (`previous_response_id`, retrieve, input_items, delete) and the
 * Anthropic SDK's message thread; the TTL is Redis's expiry and an expired
 * id is a 404; Redis going away is a 503 naming the state store and an
 * ERROR line, not a crash, and the gateways recover when it comes back; a
 * gateway started while Redis is unreachable says so and serves the rest.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { RedisClient } from "bun";
import OpenAI from "openai";
import { stringify as stringifyToml } from "smol-toml";
import { type RedisServer, redisSkipReason, startRedis } from "./helpers/redis-server.ts";
import { profile, RealFleet } from "./helpers/real-fleet.ts";

const ROOT = join(import.meta.dir, "..", "..");
const MODEL = "tiny";
const TTL_S = 600;
const PREFIX = "two-gw:";

if (redisSkipReason !== undefined) console.warn(`skipping the two-gateway Redis tests: ${redisSkipReason}`);

interface CliGateway {
  url: string;
  /** Everything it has logged so far. */
  output(): string;
  /** Resolves once its log contains `text` (an event: each chunk it writes is checked). */
  logged(text: string): Promise<void>;
  stop(): Promise<void>;
}

/** `cortex serve --config path`, resolved once it logs where it listens. */
async function serve(path: string): Promise<CliGateway> {
  const proc = Bun.spawn([process.execPath, "src/cli/main.ts", "serve", "--config", path], {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  let seen = "";
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  const listening = Promise.withResolvers<string>();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      seen += decoder.decode(chunk, { stream: true });
      const match = /gateway \S+ listening on ([\d.]+:\d+)/.exec(seen);
      if (match) listening.resolve(`http://${match[1]}`);
      for (const waiter of waiters.splice(0)) {
        if (seen.includes(waiter.text)) waiter.resolve();
        else waiters.push(waiter);
      }
    }
  };
  void Promise.all([drain(proc.stdout), drain(proc.stderr)]).then(() =>
    listening.reject(new Error(`the gateway exited without listening:\n${seen}`)),
  );
  const url = await listening.promise;
  return {
    url,
    output: () => seen,
    logged(text) {
      if (seen.includes(text)) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ text, resolve }));
    },
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

let redis: RedisServer;
let fleet: RealFleet;
let a: CliGateway;
let b: CliGateway;
let probe: RedisClient;

function configFor(redisUrl: string, name: string): string {
  const path = join(fleet.dir, `${name}.toml`);
  const table = {
    log: { level: "info", format: "text" },
    gateway: { listen: "127.0.0.1:0", metrics: false, poll_interval_ms: 100, request_timeout_s: 30 },
    state: { redis_url: redisUrl, key_prefix: PREFIX, timeout_s: 2 },
    responses: { ttl_s: TTL_S },
    neurons: [{ name: "n1", endpoint: fleet.neuron("n1").url }],
    models: [profile(MODEL, `${MODEL}.gguf`)],
  };
  writeFileSync(path, stringifyToml(table));
  return path;
}

beforeAll(async () => {
  if (redisSkipReason !== undefined) return;
  redis = await startRedis();
  fleet = await RealFleet.start([{ name: "n1", files: [`${MODEL}.gguf`] }]);
  [a, b] = await Promise.all([serve(configFor(redis.url, "a")), serve(configFor(redis.url, "b"))]);
  probe = new RedisClient(redis.url);
  await probe.connect();
}, 60_000);

afterAll(async () => {
  probe?.close();
  await a?.stop();
  await b?.stop();
  await fleet?.stop();
  await redis?.dispose();
});

const openai = (gateway: CliGateway) =>
  new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "none", maxRetries: 0 });

const question = "Tell me about the river.";
const followUp = "And the sea?";

describe.skipIf(redisSkipReason !== undefined)("two gateways sharing one Redis", () => {
  test("created on A, continued, retrieved, listed and deleted on B with the OpenAI SDK", async () => {
    const first = await openai(a).responses.create({
      model: MODEL,
      input: question,
      temperature: 0,
      max_output_tokens: 20,
    });
    const second = await openai(b).responses.create({
      model: MODEL,
      previous_response_id: first.id,
      input: followUp,
      temperature: 0,
      max_output_tokens: 20,
    });
    // B answered with A's conversation in front: the same prompt as the whole conversation sent at once.
    const whole = await openai(a).responses.create({
      model: MODEL,
      store: false,
      input: [
        { role: "user", content: question },
        { role: "assistant", content: first.output_text },
        { role: "user", content: followUp },
      ],
      temperature: 0,
      max_output_tokens: 20,
    });
    expect(second.usage?.input_tokens).toBe(whole.usage?.input_tokens);
    expect(second.output_text).toBe(whole.output_text);

    const retrieved = await openai(b).responses.retrieve(first.id);
    expect(retrieved.id).toBe(first.id);
    expect(retrieved.output_text).toBe(first.output_text);
    const items = await openai(a).responses.inputItems.list(second.id);
    expect(items.data).toHaveLength(1);
    expect(JSON.stringify(items.data[0])).toContain(followUp);

    expect(await openai(a).responses.delete(first.id)).toMatchObject({ id: first.id, deleted: true });
    const gone = await openai(b)
      .responses.retrieve(first.id)
      .catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError);
  });

  test("stored with Redis's expiry at [responses] ttl_s; once expired, a 404 on both gateways", async () => {
    const made = await openai(a).responses.create({ model: MODEL, input: question, max_output_tokens: 5 });
    const key = `${PREFIX}response:${made.id}`;
    const left = (await probe.send("PTTL", [key])) as number;
    expect(left).toBeGreaterThan((TTL_S - 60) * 1000);
    expect(left).toBeLessThanOrEqual(TTL_S * 1000);
    // Its expiry moved into the past: what Redis does when the TTL has run out.
    await probe.send("PEXPIREAT", [key, "1"]);
    for (const gateway of [a, b]) {
      const continued = await openai(gateway)
        .responses.create({
          model: MODEL,
          previous_response_id: made.id,
          input: followUp,
          max_output_tokens: 5,
        })
        .catch((e: unknown) => e);
      expect(continued).toBeInstanceOf(OpenAI.NotFoundError);
      expect((continued as InstanceType<typeof OpenAI.NotFoundError>).message).toContain(made.id);
    }
  });

  test("an Anthropic message thread continues across the gateways (round-robin, as a load balancer)", async () => {
    const targets = [a.url, b.url];
    const served: string[] = [];
    let next = 0;
    const client = new Anthropic({
      baseURL: a.url,
      apiKey: "none",
      maxRetries: 0,
      fetch: (url: string | URL | Request, init?: RequestInit) => {
        const target = targets[next++ % targets.length] as string;
        served.push(target);
        return fetch(String(url).replace(a.url, target), init);
      },
    });
    const thread = client.beta.messages.thread({ model: MODEL, max_tokens: 20, temperature: 0 } as never);
    const one = await thread.send([{ role: "user", content: question }]);
    const two = await thread.send([{ role: "user", content: followUp }]);
    expect(served).toEqual([a.url, b.url]);
    const whole = await client.messages.create({
      model: MODEL,
      max_tokens: 20,
      temperature: 0,
      messages: [
        { role: "user", content: question },
        {
          role: "assistant",
          content: one.content.map((block) => (block.type === "text" ? block.text : "")).join(""),
        },
        { role: "user", content: followUp },
      ],
    } as never);
    expect(two.usage.input_tokens + (two.usage.cache_read_input_tokens ?? 0)).toBe(
      whole.usage.input_tokens + (whole.usage.cache_read_input_tokens ?? 0),
    );
  });

  test("Redis down: 503 naming the state store and an ERROR line, the rest still served; back: it recovers", async () => {
    const before = await openai(a).responses.create({ model: MODEL, input: question, max_output_tokens: 5 });
    await redis.stop();

    const failed = await openai(b)
      .responses.retrieve(before.id)
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(OpenAI.APIError);
    expect((failed as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((failed as InstanceType<typeof OpenAI.APIError>).message).toContain("state store (Redis at");
    await b.logged("read a stored conversation failed");
    expect(b.output()).toMatch(
      /\[error\].*state store redis:\/\/127\.0\.0\.1:\d+: read a stored conversation failed/,
    );

    const thread = await fetch(`${a.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: JSON.stringify({
        model: MODEL,
        max_tokens: 5,
        messages: [{ role: "user", content: followUp }],
        thread: { type: "continue", previous_message_id: "msg_01whatever" },
      }),
    });
    expect(thread.status).toBe(529);
    const body = (await thread.json()) as { type: string; error: { type: string; message: string } };
    expect(body.error.type).toBe("overloaded_error");
    expect(body.error.message).toContain("state store");

    // What does not need the store goes on: a chat, and a response not stored.
    const chat = await openai(a).chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: question }],
      max_tokens: 5,
    });
    expect(chat.choices[0]?.message.content?.length).toBeGreaterThan(0);
    const unstored = await openai(b).responses.create({
      model: MODEL,
      input: question,
      store: false,
      max_output_tokens: 5,
    });
    expect(unstored.status).toBeDefined();

    // A gateway started now says Redis is unreachable, and serves anyway.
    const c = await serve(configFor(redis.url, "c"));
    try {
      expect(c.output()).toMatch(/\[error\].*state store redis:\/\/127\.0\.0\.1:\d+ unreachable at startup/);
      const served = await openai(c).chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: question }],
        max_tokens: 5,
      });
      expect(served.choices).toHaveLength(1);
    } finally {
      await c.stop();
    }

    // Back (empty: no persistence): both gateways store and continue again.
    await redis.start();
    const again = await openai(b).responses.create({ model: MODEL, input: question, max_output_tokens: 5 });
    const continued = await openai(a).responses.create({
      model: MODEL,
      previous_response_id: again.id,
      input: followUp,
      max_output_tokens: 5,
    });
    // The follow-up's prompt holds the stored turn in front of it.
    expect(continued.usage?.input_tokens).toBeGreaterThan(
      again.usage?.input_tokens ?? Number.MAX_SAFE_INTEGER,
    );
    await probe.connect();
    expect(await probe.exists(`${PREFIX}response:${continued.id}`)).toBe(true);
  }, 60_000);
});
