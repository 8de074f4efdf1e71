/**
 * A real fleet on loopback for gateway integration tests: N neurons (real
 * libllama on copies of the tiny model, each in its own models directory)
 * and gateways in front of them, configured from TOML like `cortex serve`.
 * Everything the tests observe goes over HTTP: the gateway's API and the
 * neurons' own `/models` and `/metrics`.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { NeuronSection } from "../../../src/core/config/config-schema.ts";
import { loadConfig } from "../../../src/core/config/load-config.ts";
import { configureLogging } from "../../../src/core/logger.ts";
import type { LoadedModel } from "../../../src/core/neuron-api.ts";
import { parseExposition, sumSamples } from "../../../src/gateway/metrics/parse-exposition.ts";
import { type RunningGateway, startGateway } from "../../../src/gateway/run-gateway.ts";
import { readGgufInfo } from "../../../src/neuron/gguf/gguf-reader.ts";
import { ensureDemoModel } from "../../../src/neuron/gguf/tiny-model.ts";
import { type RunningNeuron, startNeuron } from "../../../src/neuron/start-neuron.ts";

const MiB = 1024 * 1024;

/**
 * Sizing that makes two tiny models fit on a neuron and a third force an
 * eviction: a tiny model at context 8192 with 2 slots holds ~43 MiB by the
 * neuron's own estimate, so two of them on a 120 MiB device leave ~34 MiB
 * free, short of the 48 MiB each profile asks for. The context is that long
 * so a stream with its end token banned runs for seconds (a held request).
 */
export const FLEET_SIZING = {
  memoryLimit: 120 * MiB,
  vramEstimate: "48MiB",
  contextSize: 8192,
  slots: 2,
} as const;

export interface NeuronSpec {
  name: string;
  /** File names in its models directory, each a copy of the tiny model. */
  files: readonly string[];
  /** neuron.memory_limit in bytes; default FLEET_SIZING.memoryLimit. */
  memoryLimit?: number;
  /** Heartbeats for answers slower than this to begin (see src/neuron/chat-answer.ts); default 15 s. */
  answerHeartbeatMs?: number;
  /** More `[neuron]` keys, over the harness's. */
  config?: Record<string, unknown>;
}

export interface TestNeuron {
  name: string;
  url: string;
  running: RunningNeuron;
  /** Stops the neuron (its port refuses connections afterwards); idempotent. */
  stop(): Promise<void>;
}

export interface TestGateway {
  url: string;
  running: RunningGateway;
  /** The config file text the gateway was started from. */
  toml: string;
  stop(): Promise<void>;
}

/** A node for `[[neurons]]` that the harness did not start (a scripted fake). */
export interface ExternalNeuron {
  name: string;
  endpoint: string;
}

export interface GatewayOverOptions {
  /** TOML merged over the harness defaults (loopback listen, metrics off, 100 ms polls). */
  toml?: string;
  /** Extra `[[neurons]]` besides the started ones. */
  external?: readonly ExternalNeuron[];
  evictorIntervalMs?: number;
  /** The gateway fleet's clock (idle times are measured on it); default Date.now. */
  now?: () => number;
  /** Wait until every node is up before returning. Default true. */
  waitUp?: boolean;
}

/** Values the tests rely on, spelled out; the test's own TOML wins. */
const DEFAULTS = {
  log: { level: "warn" },
  gateway: {
    listen: "127.0.0.1:0",
    metrics: false,
    poll_interval_ms: 100,
    request_timeout_s: 30,
    load_timeout_s: 30,
  },
};

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isTable(current) && isTable(value) ? merge(current, value) : value;
  }
  return out;
}

/** The tiny model's end-of-generation token ids, banned: a stream that runs until max_tokens. */
export async function noEndBias(modelPath: string): Promise<Record<string, number>> {
  const info = await readGgufInfo(modelPath);
  return Object.fromEntries(
    [info.eosTokenId, info.eotTokenId].filter((id) => id !== undefined).map((id) => [String(id), -100]),
  );
}

/** Neurons, gateways and a temp directory; `stop()` tears all of it down. */
export class RealFleet {
  readonly dir: string;
  readonly neurons = new Map<string, TestNeuron>();
  readonly #gateways: TestGateway[] = [];
  #source = "";

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Starts the neurons (in parallel); gateways come with `gateway()`. */
  static async start(specs: readonly NeuronSpec[]): Promise<RealFleet> {
    const fleet = new RealFleet(mkdtempSync(join(tmpdir(), "cortex-fleet-")));
    configureLogging({ level: "warn", format: "text" });
    fleet.#source = await ensureDemoModel(join(fleet.dir, "source"));
    try {
      // Started together, listed in the order given (the gateway's node order).
      const started = await Promise.all(specs.map((spec) => fleet.#startNeuron(spec)));
      for (const neuron of started) fleet.neurons.set(neuron.name, neuron);
    } catch (error) {
      await fleet.stop();
      throw error;
    }
    return fleet;
  }

  /** Path of the generated tiny model every neuron's files are copies of. */
  get modelPath(): string {
    return this.#source;
  }

  neuron(name: string): TestNeuron {
    const neuron = this.neurons.get(name);
    if (neuron === undefined) throw new Error(`no test neuron ${name}`);
    return neuron;
  }

  /**
   * What SIGTERM does to a neuron (drain: in-flight requests finish, new ones
   * are refused), then a new neuron on the same address: a rolling restart.
   */
  async restartNeuron(name: string, spec: NeuronSpec, graceMs = 30_000): Promise<TestNeuron> {
    const old = this.neuron(name);
    await old.running.drain(graceMs);
    const restarted = await this.#startNeuron(spec, old.running.port);
    this.neurons.set(name, restarted);
    return restarted;
  }

  async #startNeuron(spec: NeuronSpec, port = 0): Promise<TestNeuron> {
    const modelsDir = join(this.dir, spec.name);
    mkdirSync(modelsDir, { recursive: true });
    for (const file of spec.files) copyFileSync(this.#source, join(modelsDir, file));
    const running = await startNeuron({
      config: NeuronSection.parse({
        models_dir: modelsDir,
        memory_limit: spec.memoryLimit ?? FLEET_SIZING.memoryLimit,
        default_context_size: FLEET_SIZING.contextSize,
        default_slots: FLEET_SIZING.slots,
        ...spec.config,
      }),
      listen: { hostname: "127.0.0.1", port },
      ...(spec.answerHeartbeatMs === undefined ? {} : { answerHeartbeatMs: spec.answerHeartbeatMs }),
    });
    let stopped: Promise<void> | undefined;
    return {
      name: spec.name,
      url: running.url,
      running,
      stop: () => {
        stopped ??= running.stop();
        return stopped;
      },
    };
  }

  /** Starts a gateway over every neuron of this fleet (plus `external` ones). */
  async gateway(options: GatewayOverOptions = {}): Promise<TestGateway> {
    const table = merge(DEFAULTS, parseToml(options.toml ?? "") as Record<string, unknown>);
    table.neurons = [
      ...[...this.neurons.values()].map((neuron) => ({ name: neuron.name, endpoint: neuron.url })),
      ...(options.external ?? []).map((neuron) => ({ name: neuron.name, endpoint: neuron.endpoint })),
    ];
    const toml = stringifyToml(table);
    const path = join(this.dir, `gateway-${this.#gateways.length}.toml`);
    writeFileSync(path, toml);
    const config = loadConfig({ path, env: {} });
    const running = await startGateway(config, {
      ...(options.evictorIntervalMs === undefined ? {} : { evictorIntervalMs: options.evictorIntervalMs }),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    const gateway: TestGateway = { url: running.url, running, toml, stop: () => running.stop() };
    this.#gateways.push(gateway);
    if (options.waitUp !== false) await waitForFleet(gateway, (nodes) => nodes.every(isUp));
    return gateway;
  }

  /** Unloads everything from every live neuron (forced), so a test starts from an empty fleet. */
  async unloadAll(): Promise<void> {
    await Promise.all(
      [...this.neurons.values()].map(async (neuron) => {
        for (const model of await neuronModels(neuron.url).catch(() => []))
          await neuronCall(neuron.url, "/models/unload", { id: model.id, force: true });
      }),
    );
  }

  async stop(): Promise<void> {
    for (const gateway of this.#gateways.splice(0)) await gateway.stop().catch(() => {});
    await Promise.all([...this.neurons.values()].map((neuron) => neuron.stop().catch(() => {})));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function isUp(node: FleetNodeBrief): boolean {
  return node.state === "up";
}

export interface FleetNodeBrief {
  name: string;
  state: string;
  error?: string;
  loaded: Array<{ id: string; state: string; inFlight: number; lastUsed: number }>;
}

/** GET /admin/fleet (open to loopback when no admin token is set). */
export async function fleetNodes(gatewayUrl: string, token?: string): Promise<FleetNodeBrief[]> {
  const response = await fetch(`${gatewayUrl}/admin/fleet`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw new Error(`/admin/fleet answered ${response.status}`);
  return ((await response.json()) as { nodes: FleetNodeBrief[] }).nodes;
}

/**
 * Resolves with the gateway's fleet nodes once `ready` holds for them: on the
 * gateway's own fleet changes (each poll, load or unload), not by polling.
 */
export function waitForFleet(
  gateway: Pick<TestGateway, "running">,
  ready: (nodes: FleetNodeBrief[]) => boolean,
): Promise<FleetNodeBrief[]> {
  return gateway.running.whenFleet((nodes) => nodes.length > 0 && ready(nodes));
}

/**
 * Polls `condition` every 25 ms until it holds; throws after `timeoutMs`
 * with `describe()` in the message. Used instead of fixed sleeps.
 */
export async function until(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  describe: () => string = () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`condition not met after ${timeoutMs} ms ${describe()}`);
    await Bun.sleep(25);
  }
}

/** A neuron's own view of what it has loaded (GET /models). */
export async function neuronModels(neuronUrl: string): Promise<LoadedModel[]> {
  const response = await fetch(`${neuronUrl}/models`);
  if (!response.ok) throw new Error(`${neuronUrl}/models answered ${response.status}`);
  return ((await response.json()) as { loaded: LoadedModel[] }).loaded;
}

export async function loadedIds(neuronUrl: string): Promise<string[]> {
  return (await neuronModels(neuronUrl)).map((model) => model.id).sort();
}

/** POST to a neuron's lifecycle API; throws on a non-2xx answer. */
export async function neuronCall(neuronUrl: string, path: string, body: unknown): Promise<unknown> {
  const response = await fetch(`${neuronUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path} answered ${response.status}: ${text}`);
  return JSON.parse(text) as unknown;
}

/**
 * A counter or histogram count from a neuron's own /metrics, summed over
 * series whose labels include `labels` (0 when absent).
 */
export async function neuronMetric(
  neuronUrl: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${neuronUrl}/metrics`)).text();
  return sumSamples(parseExposition(text), name, labels);
}

/** Successful loads of `model` on a neuron, by the neuron's own count. */
export function loadCount(neuronUrl: string, model: string): Promise<number> {
  return neuronMetric(neuronUrl, "cortex_neuron_model_load_duration_seconds_count", { model });
}

/** Chat requests `model` finished on a neuron, by the neuron's own count. */
export function servedCount(neuronUrl: string, model: string): Promise<number> {
  return neuronMetric(neuronUrl, "cortex_neuron_sequences_finished_total", { model });
}

/** A `[[models]]` profile sized by FLEET_SIZING, with overrides. */
export function profile(
  id: string,
  file: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id,
    file,
    context_size: FLEET_SIZING.contextSize,
    slots: FLEET_SIZING.slots,
    vram_estimate: FLEET_SIZING.vramEstimate,
    ...extra,
  };
}

/** TOML text for `[[models]]` profiles plus any other tables. */
export function configToml(table: Record<string, unknown>): string {
  return stringifyToml(table);
}
