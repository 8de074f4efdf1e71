import type { LoadedConfig } from "../core/config/load-config.ts";
import { logger } from "../core/logger.ts";
import { runUntilSignal } from "../core/run-until-signal.ts";
import { startNeuron } from "./start-neuron.ts";

/** `cortex neuron`: runs until SIGINT/SIGTERM, then drains and exits 0. */
export async function runNeuron(
  config: LoadedConfig,
  options: { faultInjection?: string | undefined },
): Promise<number> {
  const log = logger("neuron");
  // startNeuron announces fault injection, whichever way it was turned on.
  const neuron = await startNeuron({
    config: config.file.neuron,
    listen: config.neuronListen,
    logLevel: config.file.log.level,
    ...(options.faultInjection === undefined ? {} : { faultInjection: options.faultInjection }),
  });
  return runUntilSignal((hurry) => neuron.drain(config.file.neuron.shutdown_grace_s * 1000, hurry), log);
}
