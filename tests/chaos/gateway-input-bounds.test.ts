/**
 * Issue 18 §8–10: input the gateway must refuse itself, before routing,
 * without a cold load and without blaming a node: a tool schema nested
 * 50,000 levels deep (it overflowed the stack and was retried on every node),
 * `"messages": []` (it loaded a model before the neuron's 400), and bodies
 * over the size limit (read whole first, up to Bun's 128 MiB; above that Bun
 * answered 413 in its own words).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { configToml, RealFleet, type TestGateway } from "../integration/helpers/real-fleet.ts";
import { type CrashingNeuron, startCrashingNeuron } from "./helpers/crashing-neuron.ts";

let fleet: RealFleet;
let gateway: TestGateway;
let neuron: CrashingNeuron;
const MiB = 1024 * 1024;

beforeAll(async () => {
  fleet = await RealFleet.start([]);
  // Any load it is sent counts (and fails): these requests must not get that far.
  neuron = startCrashingNeuron("cold", "cold.gguf");
  gateway = await fleet.gateway({
    toml: configToml({ models: [{ id: "cold", file: "cold.gguf" }] }),
    external: [{ name: neuron.name, endpoint: neuron.url }],
  });
}, 60_000);

afterAll(async () => {
  neuron?.stop();
  await fleet?.stop();
});

function post(
  path: string,
  body: string | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
    body,
  });
}

function deepSchema(levels: number): string {
  return `${'{"type":"object","properties":{"x":'.repeat(levels)}{"type":"string"}${"}}".repeat(levels)}`;
}

test("a tool schema nested 50,000 levels deep: 400 naming the limit, no load, no node blamed", async () => {
  const tool = `{"type":"function","function":{"name":"deep","parameters":${deepSchema(50_000)}}}`;
  const body = `{"model":"cold","messages":[{"role":"user","content":"hi"}],"tools":[${tool}]}`;
  const response = await post("/v1/chat/completions", body);
  expect(response.status).toBe(400);
  const error = ((await response.json()) as { error: { type: string; message: string } }).error;
  expect(error.type).toBe("invalid_request_error");
  expect(error.message).toContain("more than 128 levels deep");
  expect(neuron.loads()).toBe(0);
});

test("a schema nested within the limit still goes through validation", async () => {
  const tool = `{"type":"function","function":{"name":"deep","parameters":${deepSchema(20)}}}`;
  const body = `{"model":"cold","messages":[],"tools":[${tool}]}`;
  const response = await post("/v1/chat/completions", body);
  expect(response.status).toBe(400);
  expect(((await response.json()) as { error: { message: string } }).error.message).toContain("messages");
});

test('"messages": [] is a 400 in each dialect before any load', async () => {
  const anthropic = await post(
    "/v1/messages",
    JSON.stringify({ model: "cold", max_tokens: 10, messages: [] }),
  );
  expect(anthropic.status).toBe(400);
  const body = (await anthropic.json()) as { type: string; error: { type: string; message: string } };
  expect(body.type).toBe("error");
  expect(body.error.type).toBe("invalid_request_error");
  expect(body.error.message).toContain("messages: expected at least one message");
  const openai = await post("/v1/chat/completions", JSON.stringify({ model: "cold", messages: [] }));
  expect(openai.status).toBe(400);
  expect(neuron.loads()).toBe(0);
});

test("a chunked body over the limit is cut off at the limit: 413 in the dialect's shape", async () => {
  let sent = 0;
  const total = 64 * MiB;
  const chunk = new Uint8Array(MiB).fill(0x20);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  const response = await post("/v1/messages", stream);
  expect(response.status).toBe(413);
  const body = (await response.json()) as { type: string; error: { type: string; message: string } };
  expect(body.type).toBe("error");
  expect(body.error.type).toBe("request_too_large");
  expect(body.error.message).toContain(`limit of ${32 * MiB} bytes`);
  expect(sent).toBeLessThan(total);
});

test("a body declared above Bun's own 128 MiB cap still gets the dialect's JSON 413", async () => {
  const { promise, resolve } = Promise.withResolvers<string>();
  let answer = "";
  const { port } = new URL(gateway.url);
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: Number(port),
    socket: {
      data(_socket, data) {
        answer += data.toString();
        if (answer.includes("}}")) resolve(answer);
      },
      close() {
        resolve(answer);
      },
    },
  });
  socket.write(
    `POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${200 * MiB}\r\n\r\n{"model":`,
  );
  const text = await promise;
  socket.end();
  expect(text.startsWith("HTTP/1.1 413")).toBe(true);
  const json = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as {
    type: string;
    error: { type: string };
  };
  expect(json).toMatchObject({ type: "error", error: { type: "request_too_large" } });
});

test("a form or text/plain body is refused on JSON routes", async () => {
  const response = await post("/v1/chat/completions", JSON.stringify({ model: "cold", messages: [] }), {
    "content-type": "text/plain",
  });
  expect(response.status).toBe(400);
  expect(((await response.json()) as { error: { message: string } }).error.message).toContain(
    "expected Content-Type: application/json",
  );
});
