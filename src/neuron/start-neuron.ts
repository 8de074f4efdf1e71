/**
 * Assembles a neuron: device pool, models directory, service and HTTP app.
 * Used by `cortex neuron`, by `cortex serve` when no neurons are configured
 * (a neuron in the gateway's own process), and by tests.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import type { NeuronSection } from "../core/config/config-schema.ts";
import type { ListenAddress } from "../core/config/parse-listen.ts";
import { logger } from "../core/logger.ts";
import { VERSION } from "../core/version.ts";
import { DevicePool, type DevicePoolOptions } from "./engine/device-pool.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "./gguf/tiny-model.ts";
import { ModelsDir } from "./models-dir.ts";
import { createNeuronApp } from "./neuron-app.ts";
import { NeuronService } from "./neuron-service.ts";

const log = logger("neuron");

export const DEMO_MODEL_ID = "cortex-tiny";

export interface StartNeuronOptions {
  config: NeuronSection;
  listen: ListenAddress;
  /** Load the demo model at start when serving the demo models directory. */
  preloadDemo?: boolean;
  faultInjection?: boolean;
  pool?: Partial<DevicePoolOptions>;
}

export interface RunningNeuron {
  url: string;
  port: number;
  service: NeuronService;
  pool: DevicePool;
  stop(): Promise<void>;
}

/** Where the generated demo model lives when no models directory is configured. */
export function demoModelsDir(env: Record<string, string | undefined> = process.env): string {
  return join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "cortex", "models");
}

export async function startNeuron(options: StartNeuronOptions): Promise<RunningNeuron> {
  const { config } = options;
  let root = config.models_dir;
  let demo = false;
  if (root === undefined) {
    root = demoModelsDir();
    await ensureDemoModel(root);
    demo = true;
    log.info(`no models_dir configured: serving the generated demo model from ${root}`);
  }
  const pool = await DevicePool.start({
    ...(config.devices === "all" ? {} : { devices: config.devices }),
    ...(config.memory_limit === undefined ? {} : { memoryLimitBytes: config.memory_limit }),
    ...(config.threads > 0 ? { threads: config.threads } : {}),
    faultInjection: options.faultInjection === true,
    ...options.pool,
  });
  const service = new NeuronService({ pool, modelsDir: new ModelsDir(root), config, version: VERSION });
  if (demo && options.preloadDemo !== false) {
    await service.load({
      id: DEMO_MODEL_ID,
      file: TINY_MODEL_FILE,
      contextSize: config.default_context_size,
    });
  }
  const app = createNeuronApp({ service, authToken: config.auth_token });
  app.listen({ hostname: options.listen.hostname, port: options.listen.port, idleTimeout: 0 });
  const server = app.server;
  if (!server) throw new Error("neuron HTTP server did not start");
  const host = options.listen.hostname === "0.0.0.0" ? "127.0.0.1" : options.listen.hostname;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${server.port}`;
  if (config.auth_token === "")
    log.warn("neuron API is open: set neuron.auth_token (CORTEX_NEURON_TOKEN) to require a bearer token");
  log.info(
    `neuron ${VERSION} listening on ${options.listen.hostname}:${server.port} (${pool
      .devices()
      .map((d) => d.id)
      .join(", ")})`,
  );
  let stopped = false;
  return {
    url,
    port: server.port ?? options.listen.port,
    service,
    pool,
    async stop() {
      if (stopped) return;
      stopped = true;
      await app.stop(true);
      await service.close();
    },
  };
}
