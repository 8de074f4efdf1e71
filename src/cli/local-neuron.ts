/**
 * `cortex serve` with no `[[neurons]]`: a neuron on this machine, run as a
 * supervised child process (`cortex neuron`, the same executable) on a
 * loopback port with a generated token, so that its Stage 2 exit or a native
 * abort costs a restart of the neuron, not the gateway. When the config
 * names no models it serves the generated demo model, or, with a
 * `models_dir`, every GGUF in it under its file name (the gateway loads each
 * on demand). Wired here, in the CLI, so that the gateway never imports the
 * neuron.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "smol-toml";
import type { ModelProfile } from "../core/config/config-schema.ts";
import { ENV_OVERRIDES } from "../core/config/env-overrides.ts";
import type { LoadedConfig } from "../core/config/load-config.ts";
import { logger } from "../core/logger.ts";
import { isCompiled } from "../core/worker-url.ts";
import { NeuronClient } from "../gateway/neuron-client.ts";
import type { LocalNeuron } from "../gateway/run-gateway.ts";
import { TINY_MODEL_FILE } from "../neuron/gguf/tiny-model.ts";
import { DEMO_CONTEXT_SIZE, DEMO_MODEL_ID } from "../neuron/start-neuron.ts";
import { EXIT, ExitError } from "./exit-codes.ts";
import { LocalNeuronSupervisor, type SupervisorEvent } from "./local-neuron-supervisor.ts";
import { type BackoffPolicy, DEFAULT_BACKOFF } from "./restart-policy.ts";

const log = logger("local-neuron");

/** The placement profile of a GGUF served under `id` when nothing else is configured. */
function fileProfile(id: string, file: string, contextSize: number): ModelProfile {
  return {
    id,
    aliases: [],
    file,
    files: {},
    context_size: contextSize,
    slots: 4,
    devices: 1,
    affinity: [],
    priority: 0,
    pinned: false,
    vision: false,
  };
}

export interface LocalNeuronOptions {
  backoff?: Partial<BackoffPolicy>;
  /** A start that has not answered `/health` after this long is killed (default 120 s: the demo model is generated and loaded first). */
  startTimeoutMs?: number;
  /** How long the child may drain after SIGTERM before SIGKILL (default `neuron.shutdown_grace_s` + 5 s). */
  stopTimeoutMs?: number;
  /** Where the child's (prefixed) log lines go; default this process's stdout/stderr. */
  forward?: (stream: "stdout" | "stderr", line: string) => void;
}

/** A running supervised neuron, with its supervisor (events, pid) for tools and tests. */
export interface SupervisedLocalNeuron extends LocalNeuron {
  supervisor: LocalNeuronSupervisor;
}

/** `cortex neuron` with this same executable: the compiled binary, or bun running main.ts. */
function cortexCommand(): string[] {
  return isCompiled() ? [process.execPath] : [process.execPath, join(import.meta.dir, "main.ts")];
}

/** A loopback port free right now; the child keeps it across restarts, so the fleet's endpoint never changes. */
function freeLoopbackPort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/**
 * The child reads exactly the gateway's validated `[neuron]` and `[log]`
 * settings from a file of its own (the env overrides were already applied to
 * them, so the child's environment drops those variables), with its
 * listen address and token replaced.
 */
function childConfigToml(config: LoadedConfig, listen: string, token: string): string {
  const neuron = Object.fromEntries(
    Object.entries({ ...config.file.neuron, listen, auth_token: token }).filter(
      ([, value]) => value !== undefined,
    ),
  );
  return stringify({ log: { level: config.file.log.level, format: config.file.log.format }, neuron });
}

function childEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const override of ENV_OVERRIDES) delete env[override.env];
  delete env.CORTEX_CONFIG;
  return env;
}

export async function startLocalNeuron(
  config: LoadedConfig,
  options: LocalNeuronOptions = {},
): Promise<SupervisedLocalNeuron> {
  const port = freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const token = randomBytes(24).toString("hex");
  // Private (mkdtemp makes it 0700): the file holds the child's token.
  const dir = mkdtempSync(join(tmpdir(), "cortex-local-neuron-"));
  const configPath = join(dir, "neuron.toml");
  writeFileSync(configPath, childConfigToml(config, `127.0.0.1:${port}`, token), { mode: 0o600 });
  const client = new NeuronClient({ name: "local", endpoint: url, token });
  const supervisor = new LocalNeuronSupervisor({
    command: [...cortexCommand(), "neuron", "--config", configPath],
    env: childEnv(),
    probe: async () => {
      await client.health({ timeoutMs: 2_000 });
    },
    backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    startTimeoutMs: options.startTimeoutMs ?? 120_000,
    stopTimeoutMs: options.stopTimeoutMs ?? (config.file.neuron.shutdown_grace_s + 5) * 1000,
    log,
    logFormat: config.file.log.format,
    ...(options.forward === undefined ? {} : { forward: options.forward }),
  });
  const cleanUp = () => rmSync(dir, { recursive: true, force: true });
  try {
    await supervisor.start();
  } catch (error) {
    cleanUp();
    throw new ExitError(error instanceof Error ? error.message : String(error), EXIT.failure);
  }
  const stop = async () => {
    await supervisor.stop();
    cleanUp();
  };
  let models = config.models;
  try {
    if (models.length === 0 && config.file.neuron.models_dir === undefined)
      models = [fileProfile(DEMO_MODEL_ID, TINY_MODEL_FILE, DEMO_CONTEXT_SIZE)];
    else if (models.length === 0) {
      // A models_dir and no [[models]]: each GGUF under its file name, at most the configured default context.
      const { available } = await client.models({ timeoutMs: 30_000 });
      const context = config.file.neuron.default_context_size;
      models = available
        .filter((file) => file.problem === undefined)
        .map((file) =>
          fileProfile(
            file.file.replace(/\.gguf$/i, "").replace(/[^A-Za-z0-9._-]+/g, "-"),
            file.file,
            Math.min(context, file.contextLength ?? context),
          ),
        );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    token,
    models,
    supervisor,
    onRestart(listener) {
      return supervisor.subscribe((event: SupervisorEvent) => {
        if (event.type === "restart-scheduled") listener(event.reason.label);
      });
    },
    stop,
  };
}
