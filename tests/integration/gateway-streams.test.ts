/**
 * Streams through the gateway: a neuron that dies mid-stream (a scripted
 * one), a client that goes away (a real neuron must free the slot), the
 * per-model concurrency limit, and request ids end to end.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type FaultNeuron, FIREHOSE_FRAMES, startFaultNeuron } from "./helpers/fault-neuron.ts";
import { chat, chatBody, holdStream, messages, readSse } from "./helpers/gateway-requests.ts";
import {
  configToml,
  neuronMetric,
  neuronModels,
  noEndBias,
  profile,
  RealFleet,
  type TestGateway,
  until,
} from "./helpers/real-fleet.ts";

let fleet: RealFleet;
let faulty: FaultNeuron;
let gateway: TestGateway;
let noEnd: Record<string, number>;

beforeAll(async () => {
  faulty = startFaultNeuron("faulty");
  fleet = await RealFleet.start([
    { name: "n1", files: ["a.gguf"] },
    // Heartbeats after 1 ms: every answer from n2 that is not instant goes out with them.
    { name: "n2", files: ["b.gguf"], answerHeartbeatMs: 1 },
  ]);
  noEnd = await noEndBias(fleet.modelPath);
  gateway = await fleet.gateway({
    external: [{ name: faulty.name, endpoint: faulty.url }],
    toml: configToml({
      gateway: {
        max_concurrency_per_model: 1,
        queue_size_per_model: 1,
        metrics: true,
        metrics_listen: "127.0.0.1:0",
      },
      models: [
        profile("alpha", "a.gguf", { affinity: ["n1"] }),
        profile("beta", "b.gguf", { affinity: ["n2"] }),
      ],
    }),
  });
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
  faulty?.stop();
});

/** Resolves once n1's engine has this many requests of alpha running (an event, not a poll). */
async function alphaInFlight(count: number): Promise<void> {
  await fleet
    .neuron("n1")
    .running.pool.untilModels((models) => models.find((model) => model.id === "alpha")?.inFlight === count);
}

describe("a neuron that dies mid-stream", () => {
  const reasons: Record<string, RegExp> = {
    "dies-abruptly": /node faulty failed mid-stream/,
    "dies-cleanly": /stream ended before it finished/,
  };
  for (const [model, reason] of Object.entries(reasons)) {
    test(`${model}: the OpenAI stream ends with an error object, not a hang or a silent end`, async () => {
      const response = await chat(gateway.url, model, { stream: true });
      expect(response.status).toBe(200);
      const frames = await readSse(response);
      const data = frames.map((frame) => frame.data);
      // The text that did arrive is relayed first.
      expect(data.some((d) => d.includes("garden"))).toBe(true);
      const last = JSON.parse(data.at(-1) ?? "{}") as { error?: { message: string; code?: string } };
      expect(last.error?.message).toMatch(reason);
      expect(data).not.toContain("[DONE]");
      expect(data.some((d) => d.includes('"finish_reason":"stop"'))).toBe(false);
    });

    test(`${model}: the Anthropic stream ends with event: error`, async () => {
      const response = await messages(gateway.url, model, { stream: true });
      expect(response.status).toBe(200);
      const frames = await readSse(response);
      expect(frames[0]?.event).toBe("message_start");
      const last = frames.at(-1);
      expect(last?.event).toBe("error");
      const body = JSON.parse(last?.data ?? "{}") as {
        type: string;
        error: { type: string; message: string };
      };
      expect(body.type).toBe("error");
      expect(body.error.type).toBe("api_error");
      expect(body.error.message).toMatch(reason);
      expect(frames.some((frame) => frame.event === "message_stop")).toBe(false);
    });
  }

  test("a non-streamed request to it fails with 502 instead of a truncated answer", async () => {
    const response = await chat(gateway.url, "dies-abruptly");
    expect(response.status).toBe(502);
    const body = (await response.json()) as { error: { code: string } };
    expect(body.error.code).toBe("upstream_error");
  });
});

describe("a neuron that sends heartbeats before slow answers", () => {
  test("clients get the same answers through the gateway, streamed and not, in both dialects", async () => {
    const long = { max_tokens: 200, logit_bias: noEnd };
    const plain = (await (await chat(gateway.url, "alpha", { extra: long })).json()) as {
      choices: Array<{ message: { content: string } }>;
    };
    const expected = plain.choices[0]?.message.content ?? "";
    expect(expected.length).toBeGreaterThan(100);

    const whole = await chat(gateway.url, "beta", { extra: long });
    expect(whole.status).toBe(200);
    const body = (await whole.json()) as { choices: Array<{ message: { content: string } }> };
    expect(body.choices[0]?.message.content).toBe(expected);

    // Straight from n2 (the gateway loaded beta there): the heartbeat is on the wire.
    const direct = await fetch(`${fleet.neuron("n2").url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chatBody("beta", long)),
    });
    expect((await direct.text()).startsWith(" ")).toBe(true);

    const streamed = await chat(gateway.url, "beta", { stream: true, extra: long });
    const frames = await readSse(streamed);
    const text = frames
      .filter((frame) => frame.data !== "[DONE]")
      .map(
        (frame) => (JSON.parse(frame.data) as { choices: Array<{ delta: { content?: string } }> }).choices[0],
      )
      .map((choice) => choice?.delta.content ?? "")
      .join("");
    expect(text).toBe(expected);

    const anthropic = await messages(gateway.url, "beta", { extra: { max_tokens: 200, temperature: 0 } });
    expect(anthropic.status).toBe(200);
    const message = (await anthropic.json()) as { content: Array<{ type: string; text: string }> };
    expect(message.content[0]?.text.length).toBeGreaterThan(0);
  });
});

describe("a non-streamed answer that fails after its headers", () => {
  test("the neuron's error envelope in place of the completion becomes that error, in each dialect", async () => {
    const response = await chat(gateway.url, "fails-late");
    expect(response.status).toBe(503);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("device_fault");
    expect(body.error.message).toContain("scripted device fault");
    // Anthropic's own status and envelope for a device fault (its mapping: map-anthropic-error.ts).
    const anthropic = await messages(gateway.url, "fails-late");
    expect(anthropic.status).toBeGreaterThanOrEqual(500);
    const error = (await anthropic.json()) as { type: string; error: { message: string } };
    expect(error.type).toBe("error");
    expect(error.error.message).toContain("scripted device fault");
  });
});

describe("request ids", () => {
  test("the client's x-request-id reaches the neuron and comes back", async () => {
    const response = await chat(gateway.url, "echo", { headers: { "x-request-id": "req-from-client-1" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).toBe("req-from-client-1");
    expect(faulty.requestIds.at(-1)).toBe("req-from-client-1");
  });

  test("without one, the gateway makes one up and uses it upstream too", async () => {
    const response = await chat(gateway.url, "echo", { stream: true });
    expect(response.status).toBe(200);
    const id = response.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await readSse(response);
    expect(faulty.requestIds.at(-1)).toBe(id);
  });

  test("errors carry it too", async () => {
    const response = await chat(gateway.url, "nope", { headers: { "x-request-id": "req-404" } });
    expect(response.status).toBe(404);
    expect(response.headers.get("x-request-id")).toBe("req-404");
  });
});

describe("a client that stops reading", () => {
  test("the gateway does not read ahead of it: the neuron's writes wait, and resume when the client reads", async () => {
    const controller = new AbortController();
    const response = await chat(gateway.url, "firehose", { stream: true, signal: controller.signal });
    expect(response.status).toBe(200);
    const reader = response.body?.getReader();
    if (!reader) throw new Error("no body");
    await reader.read();
    // The client stops reading; the neuron writes until every buffer on the way is full.
    let last = -1;
    let steady = 0;
    await until(
      () => {
        const now = faulty.firehoseBytes();
        steady = now === last ? steady + 1 : 0;
        last = now;
        return steady >= 12; // unchanged for 300 ms
      },
      15_000,
      () => `the neuron kept writing (${faulty.firehoseBytes()} bytes)`,
    );
    const stalled = faulty.firehoseBytes();
    // What the path holds is socket buffers on two loopback hops (13-30 MB seen here), not the
    // answer: a gateway that read ahead would have taken all ~170 MB.
    expect(stalled).toBeLessThan(80 * 2 ** 20);
    expect(stalled).toBeLessThan(FIREHOSE_FRAMES * 150);
    // Reading again lets the neuron go on.
    let received = 0;
    while (received < 4 * 2 ** 20) {
      const { value, done } = await reader.read();
      if (done) break;
      received += value.byteLength;
    }
    await until(
      () => faulty.firehoseBytes() > stalled,
      5_000,
      () => "the neuron did not resume",
    );
    await reader.cancel();
    controller.abort();
  });
});

describe("with a real neuron", () => {
  test("a non-streaming client that disconnects while the answer is generated frees the neuron's slot", async () => {
    const url = fleet.neuron("n1").url;
    const generatedBefore = await neuronMetric(url, "cortex_neuron_tokens_generated_total", {
      model: "alpha",
    });
    const controller = new AbortController();
    const pending = chat(gateway.url, "alpha", {
      signal: controller.signal,
      extra: { max_tokens: 8000, context_overflow: "clamp", logit_bias: noEnd },
    }).catch((error: unknown) => error);
    await alphaInFlight(1);
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await alphaInFlight(0);
    // The neuron stopped generating instead of running on to max_tokens.
    const generated =
      (await neuronMetric(url, "cortex_neuron_tokens_generated_total", { model: "alpha" })) - generatedBefore;
    expect(generated).toBeLessThan(4_000);
  });

  test("a client that disconnects frees the neuron's slot", async () => {
    const url = fleet.neuron("n1").url;
    const held = await holdStream(gateway.url, "alpha", noEnd);
    // Read a little, as a client would, before going away.
    const reader = held.response.body?.getReader();
    await reader?.read();
    expect((await neuronModels(url)).find((model) => model.id === "alpha")?.inFlight).toBe(1);
    await reader?.cancel();
    await held.release();
    await alphaInFlight(0);
    // The neuron stopped generating: it did not run on to max_tokens (8000), far from it.
    const generated = await neuronMetric(url, "cortex_neuron_tokens_generated_total", { model: "alpha" });
    expect(generated).toBeLessThan(4_000);
  });

  test("over max_concurrency_per_model + queue_size_per_model: 429 with Retry-After", async () => {
    const metricsUrl = gateway.running.metricsUrl;
    if (metricsUrl === undefined) throw new Error("gateway metrics are off");
    const held = await holdStream(gateway.url, "alpha", noEnd);
    const queued = chat(gateway.url, "alpha");
    try {
      await until(
        async () =>
          (await (await fetch(metricsUrl)).text()).includes('cortex_gateway_queue_depth{model="alpha"} 1'),
        5_000,
        () => "waiting for the second request to queue",
      );
      const refused = await chat(gateway.url, "alpha");
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      const body = (await refused.json()) as { error: { code: string; message: string } };
      expect(body.error.message).toContain("too many requests for alpha");
      // Anthropic clients get their own envelope.
      const anthropic = await messages(gateway.url, "alpha");
      expect(anthropic.status).toBe(429);
      expect(((await anthropic.json()) as { error: { type: string } }).error.type).toBe("rate_limit_error");
    } finally {
      await held.release();
    }
    // The queued one runs once the slot is free.
    expect((await queued).status).toBe(200);
  });
});
