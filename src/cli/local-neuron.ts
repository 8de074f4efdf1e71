/**
 * `cortex serve` with no `[[neurons]]`: a neuron in this process. When the
 * config names no models it serves the generated demo model, or, with a
 * `models_dir`, every GGUF in it under its file name (the gateway loads each
 * on demand). Wired here, in the CLI, so that the gateway never imports the
 * neuron.
 */
import type { ModelProfile } from "../core/config/config-schema.ts";
import type { LoadedConfig } from "../core/config/load-config.ts";
import type { LocalNeuron } from "../gateway/run-gateway.ts";
import { TINY_MODEL_FILE } from "../neuron/gguf/tiny-model.ts";
import { DEMO_CONTEXT_SIZE, DEMO_MODEL_ID, startNeuron } from "../neuron/start-neuron.ts";

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

export async function startLocalNeuron(config: LoadedConfig): Promise<LocalNeuron> {
  const neuron = await startNeuron({
    config: config.file.neuron,
    listen: { hostname: "127.0.0.1", port: 0 },
    preloadDemo: config.models.length === 0,
    logLevel: config.file.log.level,
  });
  let models = config.models;
  if (models.length === 0 && config.file.neuron.models_dir === undefined)
    models = [fileProfile(DEMO_MODEL_ID, TINY_MODEL_FILE, DEMO_CONTEXT_SIZE)];
  else if (models.length === 0) {
    // A models_dir and no [[models]]: each GGUF under its file name, at most the configured default context.
    const { available } = await neuron.service.models();
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
  return { url: neuron.url, models, stop: () => neuron.stop() };
}
