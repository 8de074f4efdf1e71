/**
 * Issue 18 §15, the small ones: an empty API key list from `CORTEX_API_KEYS=","`
 * opened the API; `Authorization: KEY` without `Bearer` was accepted; a
 * client's string could forge log lines; a 409 was typed `server_error`.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { ConsolaInstance } from "consola";
import { ConfigError } from "../../src/core/config/config-error.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { CortexError } from "../../src/core/errors.ts";
import { logFields } from "../../src/core/logger.ts";
import { renderOpenAIError } from "../../src/dialects/openai/render-error.ts";
import { chat } from "../integration/helpers/gateway-requests.ts";
import { configToml, RealFleet, type TestGateway } from "../integration/helpers/real-fleet.ts";
import { type CrashingNeuron, startCrashingNeuron } from "./helpers/crashing-neuron.ts";

let fleet: RealFleet;
let gateway: TestGateway;
let neuron: CrashingNeuron;

beforeAll(async () => {
  fleet = await RealFleet.start([]);
  neuron = startCrashingNeuron("node", "cold.gguf");
  gateway = await fleet.gateway({
    toml: configToml({ gateway: { api_keys: ["k1"] }, models: [] }),
    external: [{ name: neuron.name, endpoint: neuron.url }],
  });
}, 60_000);

afterAll(async () => {
  neuron?.stop();
  await fleet?.stop();
});

test('CORTEX_API_KEYS="," is refused at start, naming the variable', () => {
  let error: unknown;
  try {
    loadConfig({ env: { CORTEX_API_KEYS: "," } });
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).problems[0]).toContain("environment CORTEX_API_KEYS");
});

test("an API key without Bearer is not accepted as one", async () => {
  const bare = await chat(gateway.url, "nothing", { headers: { authorization: "k1" } });
  expect(bare.status).toBe(401);
  const bearer = await chat(gateway.url, "nothing", { headers: { authorization: "Bearer k1" } });
  expect(bearer.status).toBe(404);
});

test("a client's string cannot forge a log field or line", () => {
  const lines: string[] = [];
  const log = { level: 5, info: (line: string) => lines.push(line) } as unknown as ConsolaInstance;
  logFields(log, "info", "POST /v1/chat/completions", {
    status: 200,
    request_id: 'x status=500\n[error] forged "line"',
  });
  expect(lines).toHaveLength(1);
  expect(lines[0]).not.toContain("\n");
  expect(lines[0]).toContain('request_id="x status=500\\n[error] forged \\"line\\""');
});

test("a 409 is a client-side error type, not server_error", () => {
  const rendered = renderOpenAIError(new CortexError("conflict", "busy"));
  expect(rendered.status).toBe(409);
  expect((rendered.body as { error: { type: string } }).error.type).toBe("invalid_request_error");
});
