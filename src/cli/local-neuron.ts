/**
 * `cortex serve` with no `[[neurons]]`: a neuron in this process, serving the
 * generated demo model when the config names no models. Wired here, in the
 * CLI, so that the gateway never imports the neuron.
 */
import type { ModelProfile } from "../core/config/config-schema.ts";
import type { LoadedConfig } from "../core/config/load-config.ts";
import type { LocalNeuron } from "../gateway/run-gateway.ts";
import { TINY_MODEL_FILE } from "../neuron/gguf/tiny-model.ts";
import { DEMO_CONTEXT_SIZE, DEMO_MODEL_ID, startNeuron } from "../neuron/start-neuron.ts";

/** The placement profile of the generated demo model, served when nothing else is configured. */
function demoProfile(contextSize: number): ModelProfile {
  return {
    id: DEMO_MODEL_ID,
    aliases: [],
    file: TINY_MODEL_FILE,
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
  const demo = config.models.length === 0 && config.file.neuron.models_dir === undefined;
  return {
    url: neuron.url,
    models: demo ? [demoProfile(DEMO_CONTEXT_SIZE)] : config.models,
    stop: () => neuron.stop(),
  };
}
