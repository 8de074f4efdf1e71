/**
 * Starts a gateway for dialect tests from a TOML config written to a temp
 * directory: either over an in-process neuron serving the tiny model from a
 * temp models directory, or over `[[neurons]]` the test runs itself.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../../src/core/config/load-config.ts";
import { configureLogging } from "../../../src/core/logger.ts";
import { startLocalNeuron } from "../../../src/cli/local-neuron.ts";
import { type RunningGateway, startGateway } from "../../../src/gateway/run-gateway.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../../src/neuron/gguf/tiny-model.ts";
import { writeLongTinyModel } from "./long-tiny-model.ts";

export const TINY_ID = "cortex-tiny";

export interface TestModel {
  id: string;
  file?: string;
  contextSize?: number;
  vision?: boolean;
}

export interface TestGatewayOptions {
  models?: TestModel[];
  apiKeys?: string[];
  /** Scripted neurons to use instead of the in-process one. */
  neurons?: Array<{ name: string; endpoint: string }>;
  /** Also write the tiny model with this trained context, as LONG_TINY_FILE. */
  longContext?: number;
}

export interface TestGateway {
  gateway: RunningGateway;
  url: string;
  dir: string;
  stop(): Promise<void>;
}

function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** The config file text; every value the tests depend on is spelled out. */
export function gatewayToml(options: TestGatewayOptions, modelsDir: string): string {
  const lines = [
    "[log]",
    'level = "warn"',
    "[gateway]",
    'listen = "127.0.0.1:0"',
    "metrics = false",
    `api_keys = [${(options.apiKeys ?? []).map(tomlString).join(", ")}]`,
    "poll_interval_ms = 200",
    "request_timeout_s = 60",
    "load_timeout_s = 60",
    "[neuron]",
    `models_dir = ${tomlString(modelsDir)}`,
  ];
  for (const neuron of options.neurons ?? [])
    lines.push(
      "[[neurons]]",
      `name = ${tomlString(neuron.name)}`,
      `endpoint = ${tomlString(neuron.endpoint)}`,
    );
  for (const model of options.models ?? [{ id: TINY_ID }])
    lines.push(
      "[[models]]",
      `id = ${tomlString(model.id)}`,
      `file = ${tomlString(model.file ?? TINY_MODEL_FILE)}`,
      `context_size = ${model.contextSize ?? 2048}`,
      `vision = ${model.vision ?? false}`,
    );
  return `${lines.join("\n")}\n`;
}

export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), "cortex-dialects-"));
  const modelsDir = join(dir, "models");
  if (options.neurons === undefined) await ensureDemoModel(modelsDir);
  if (options.longContext !== undefined) await writeLongTinyModel(modelsDir, options.longContext);
  const path = join(dir, "cortex.toml");
  writeFileSync(path, gatewayToml(options, modelsDir));
  const config = loadConfig({ path, env: {} });
  configureLogging(config.file.log);
  const gateway = await startGateway(config, { startLocalNeuron });
  await waitForNodesUp(gateway.url);
  return {
    gateway,
    url: gateway.url,
    dir,
    async stop() {
      await gateway.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A gateway answers 503 until its first poll has seen a node; tests wait for
 * that instead of racing it (the admin API is open to loopback).
 */
export async function waitForNodesUp(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const response = await fetch(`${url}/admin/fleet`);
    const view = (await response.json()) as { nodes?: Array<{ name: string; state: string }> };
    const nodes = view.nodes ?? [];
    last = nodes.map((node) => `${node.name}: ${node.state}`).join(", ");
    if (nodes.length > 0 && nodes.every((node) => node.state === "up")) return;
    await Bun.sleep(20);
  }
  throw new Error(`gateway ${url}: nodes not up after ${timeoutMs} ms (${last})`);
}
