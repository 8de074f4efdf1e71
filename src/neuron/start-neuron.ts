/**
 * Assembles a neuron: device pool, models directory, service and HTTP app.
 * Used by `cortex neuron`, by `cortex serve` when no neurons are configured
 * (a neuron in the gateway's own process), and by tests.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { bindServer, EXCLUSIVE_BIND } from "../core/bind-server.ts";
import { isLoopback } from "../core/config/exposure.ts";
import { InFlight } from "../core/in-flight.ts";
import { settlesWithin } from "../core/within.ts";
import type { LogLevel, NeuronSection } from "../core/config/config-schema.ts";
import type { ListenAddress } from "../core/config/parse-listen.ts";
import { logger } from "../core/logger.ts";
import { VERSION } from "../core/version.ts";
import { DevicePool, type DevicePoolOptions } from "./engine/device-pool.ts";
import { fromNative } from "./engine/native-failure.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "./gguf/tiny-model.ts";
import { ModelsDir } from "./models-dir.ts";
import { createNeuronApp } from "./neuron-app.ts";
import { createNeuronMetrics, type NeuronMetrics } from "./neuron-metrics.ts";
import { NeuronService } from "./neuron-service.ts";
import { TemplateRenderer } from "./prompt/template-renderer.ts";
import { HubClient } from "./pull/hub-client.ts";
import { PullManager, type PullManagerOptions } from "./pull/pull-manager.ts";
import {
  announceFaultPlan,
  type FaultPlan,
  faultPlanFrom,
  NO_FAULTS,
  parseFaultSpec,
} from "./tp/fault-injection.ts";

const log = logger("neuron");

export const DEMO_MODEL_ID = "cortex-tiny";
/** Context the demo model is served with: enough for Claude Code's ~35k-token first request. */
export const DEMO_CONTEXT_SIZE = 65536;

export interface StartNeuronOptions {
  config: NeuronSection;
  listen: ListenAddress;
  /** Load the demo model at start when serving the demo models directory. */
  preloadDemo?: boolean;
  /**
   * Test only. A spec (tp/fault-injection.ts) injects those faults into
   * tensor-parallel groups; `true` reads the spec from `--fault-injection`
   * in argv or CORTEX_FAULT_INJECTION (and allows the engine's inject-fault
   * jobs either way). Without it only CORTEX_FAULT_INJECTION can turn faults on.
   */
  faultInjection?: boolean | string;
  pool?: Partial<DevicePoolOptions>;
  /** The configured log level (`log.level`); ggml's own logging follows it. Default info. */
  logLevel?: LogLevel;
  /** Test only: between the heartbeats of an answer that is slow to begin (chat-answer.ts). */
  answerHeartbeatMs?: number;
  /** Test only: pull retry timing (download-file.ts). */
  pullRetry?: Pick<PullManagerOptions, "attempts" | "retryDelayMs">;
}

export interface RunningNeuron {
  url: string;
  port: number;
  service: NeuronService;
  pool: DevicePool;
  metrics: NeuronMetrics;
  /**
   * SIGTERM: /health says draining and new work is refused at once, requests
   * already running finish (for at most `graceMs`), then the neuron stops.
   */
  drain(graceMs: number, hurry?: AbortSignal): Promise<void>;
  /** Requests on the work routes whose answers are not sent yet. */
  inFlight(): number;
  pulls: PullManager;
  stop(): Promise<void>;
}

function faultPlanOf(option: boolean | string | undefined): FaultPlan {
  if (typeof option === "string") return parseFaultSpec(option);
  if (option === true) return faultPlanFrom(process.argv, process.env);
  const env = process.env.CORTEX_FAULT_INJECTION;
  return env ? parseFaultSpec(env) : NO_FAULTS;
}

/** ggml logs warnings only, unless cortex logs at debug (ggml info) or trace (ggml debug). */
export function ggmlLogLevel(level: LogLevel): number {
  if (level === "trace") return 1;
  if (level === "debug") return 2;
  return 3;
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
  const modelsDir = new ModelsDir(root);
  await modelsDir.check("neuron.models_dir");
  const faults = faultPlanOf(options.faultInjection);
  const engineFaults = options.faultInjection !== undefined && options.faultInjection !== false;
  announceFaultPlan(faults);
  if (engineFaults && faults.faults.length === 0)
    log.warn(
      "fault injection is ON (inject-fault jobs); this neuron may fail on purpose. Never use it in production.",
    );
  const metrics = createNeuronMetrics();
  const pool = await DevicePool.start({
    ...(config.devices === "all" ? {} : { devices: config.devices }),
    ...(config.memory_limit === undefined ? {} : { memoryLimitBytes: config.memory_limit }),
    ...(config.threads > 0 ? { threads: config.threads } : {}),
    cpuDevices: config.cpu_devices,
    promptCacheBytes: config.prompt_cache_bytes,
    allowCpuFallback: config.allow_cpu_fallback,
    faultInjection: engineFaults,
    faultSpec: faults.spec,
    tpTimings: {
      stepTimeoutMs: config.step_timeout_s * 1000,
      abortTimeoutMs: config.abort_timeout_s * 1000,
      graceMs: config.stage2_grace_s * 1000,
    },
    ggmlLogLevel: ggmlLogLevel(options.logLevel ?? "info"),
    observer: metrics.observer,
    stallTimeoutMs: config.stall_timeout_s * 1000,
    ...options.pool,
  }).catch((error: unknown) => {
    // A missing or mismatched native set: the CLI reports a CortexError as one line, not a stack.
    throw fromNative(error);
  });
  metrics.bind(pool);
  const service = new NeuronService({
    pool,
    modelsDir,
    config,
    version: VERSION,
    unhealthyReason: () => pool.fatalReason,
    templates: new TemplateRenderer(config.template_timeout_s * 1000, config.template_max_chars),
  });
  if (demo && options.preloadDemo !== false) {
    await service.load({
      id: DEMO_MODEL_ID,
      file: TINY_MODEL_FILE,
      contextSize: DEMO_CONTEXT_SIZE,
    });
  }
  const inFlight = new InFlight();
  const pulls = new PullManager({
    hub: new HubClient({ endpoint: config.hf_endpoint, token: config.hf_token }),
    modelsDir,
    keepFreeBytes: config.pull_keep_free,
    observer: metrics.pulls,
    ...options.pullRetry,
  });
  const app = createNeuronApp({
    service,
    inFlight,
    pulls,
    authToken: config.auth_token,
    metrics: () => metrics.render(),
    ...(options.answerHeartbeatMs === undefined ? {} : { answerHeartbeatMs: options.answerHeartbeatMs }),
    bodyTimeoutS: config.body_timeout_s,
  });
  try {
    bindServer("neuron.listen", options.listen, () =>
      app.listen({ ...options.listen, ...EXCLUSIVE_BIND, idleTimeout: config.idle_timeout_s }),
    );
  } catch (error) {
    pulls.close();
    await service.close();
    throw error;
  }
  const server = app.server;
  if (!server) throw new Error("neuron HTTP server did not start");
  const host = options.listen.hostname === "0.0.0.0" ? "127.0.0.1" : options.listen.hostname;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${server.port}`;
  if (config.auth_token === "" && !isLoopback(options.listen.hostname))
    log.warn(
      "neuron API is open on purpose (neuron.allow_unauthenticated): set neuron.auth_token (CORTEX_NEURON_TOKEN) to require a bearer token",
    );
  log.info(
    `neuron ${VERSION} listening on ${options.listen.hostname}:${server.port} (${pool
      .devices()
      .map((d) => d.id)
      .join(", ")})`,
  );
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Downloads stop; their partial files stay and resume at the next pull.
    pulls.close();
    await app.stop(true);
    await service.close();
  };
  return {
    url,
    port: server.port ?? options.listen.port,
    service,
    pool,
    metrics,
    async drain(graceMs, hurry) {
      service.beginDrain();
      log.info(
        `draining: ${inFlight.size} request(s) in flight, new ones refused (grace ${graceMs / 1000} s)`,
      );
      const started = Date.now();
      let drained = await settlesWithin(inFlight.untilIdle(), graceMs, hurry);
      // The last answers are handed to the server but maybe not written yet (a load's JSON): close
      // the listener and let Bun finish sending them before the connections are cut.
      if (drained && app.server !== null && app.server !== undefined)
        drained = await settlesWithin(
          app.server.stop(false),
          Math.max(0, graceMs - (Date.now() - started)),
          hurry,
        );
      if (drained) log.info("drained: every request finished");
      else
        log.warn(
          `neuron.shutdown_grace_s ran out with ${inFlight.size} request(s) still running; they are cut off`,
        );
      await stop();
    },
    pulls,
    inFlight: () => inFlight.size,
    stop,
  };
}
