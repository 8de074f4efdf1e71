/**
 * Issue 18 §12: both servers set Bun's idleTimeout to 0 (long answers write
 * nothing for minutes), so idle keep-alive connections and half-sent requests
 * were never closed (3,000 held 3,000 fds). Now idle_timeout_s closes them,
 * body_timeout_s bounds a trickled body, and an answer that takes longer than
 * the idle timeout is still not cut.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chat } from "../integration/helpers/gateway-requests.ts";
import { configToml, RealFleet, type TestGateway } from "../integration/helpers/real-fleet.ts";
import { type RawConnection, rawConnection } from "./helpers/raw-connection.ts";
import { type ScriptedNeuron, startScriptedNeuron } from "./helpers/scripted-neuron.ts";

let fleet: RealFleet;
let gateway: TestGateway;
let scripted: ScriptedNeuron;
let neuronUrl: string;

beforeAll(async () => {
  fleet = await RealFleet.start([
    { name: "real", files: [], config: { idle_timeout_s: 1, body_timeout_s: 0.5 } },
  ]);
  neuronUrl = fleet.neuron("real").url;
  scripted = startScriptedNeuron("scripted");
  gateway = await fleet.gateway({
    toml: configToml({
      gateway: { idle_timeout_s: 1, body_timeout_s: 0.5 },
      models: [{ id: "m", file: "m.gguf", affinity: ["scripted"] }],
    }),
    external: [{ name: scripted.name, endpoint: scripted.url }],
  });
}, 60_000);

afterAll(async () => {
  scripted?.stop();
  await fleet?.stop();
});

/** A byte of the body every 50 ms, until the server answers or closes. */
function trickle(connection: RawConnection): () => void {
  const timer = setInterval(() => connection.write(" "), 50);
  return () => clearInterval(timer);
}

/** The same check on both servers, at once (Bun checks idle connections every few seconds). */
async function eachServer(check: (server: { url: string; path: string }) => Promise<void>): Promise<void> {
  await Promise.all([gateway.url, neuronUrl].map((url) => check({ url, path: "/v1/chat/completions" })));
}

test("an idle keep-alive connection is closed, on both servers", async () => {
  await eachServer(async (server) => {
    const connection = await rawConnection(server.url);
    connection.write(`GET /health HTTP/1.1\r\nhost: x\r\n\r\n`);
    await connection.receivedText("\r\n\r\n");
    await connection.closed;
    expect(connection.received()).toContain("HTTP/1.1");
  });
});

test("a request that stops halfway through its body is closed, on both servers", async () => {
  await eachServer(async (server) => {
    const body = await rawConnection(server.url);
    body.write(
      `POST ${server.path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"mo`,
    );
    await body.closed;
  });
});

test("a body trickled in a byte at a time is refused with 408, on both servers", async () => {
  await eachServer(async (server) => {
    const connection = await rawConnection(server.url);
    connection.write(
      `POST ${server.path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n`,
    );
    const stop = trickle(connection);
    await Promise.race([connection.receivedText("\r\n\r\n"), connection.closed]);
    stop();
    expect(connection.received()).toStartWith("HTTP/1.1 408");
    expect(connection.received()).toContain("body_timeout_s");
    connection.end();
  });
});

// Bun does not time out a handler still at work once its body is in: a load or a slow
// prefill writes nothing for minutes, and must not be cut.
test("an answer that takes longer than the idle timeout is not cut", async () => {
  scripted.script(() => "silent");
  const answer = chat(gateway.url, "m");
  await scripted.nextChat();
  // A connection opened after the chat's, closed by the idle timeout: the chat's has been
  // idle longer, and is still open.
  const later = await rawConnection(gateway.url);
  later.write(`GET /health HTTP/1.1\r\nhost: x\r\n\r\n`);
  await later.closed;
  scripted.answerHeld();
  const response = await answer;
  expect(response.status).toBe(200);
});
