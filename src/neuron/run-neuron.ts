import type { LoadedConfig } from "../core/config/load-config.ts";
import { logger } from "../core/logger.ts";
import { startNeuron } from "./start-neuron.ts";

/** `cortex neuron`: runs until SIGINT/SIGTERM, then drains and exits 0. */
export async function runNeuron(
  config: LoadedConfig,
  options: { faultInjection?: string | undefined },
): Promise<number> {
  const log = logger("neuron");
  if (options.faultInjection !== undefined)
    log.warn(`FAULT INJECTION ENABLED (${options.faultInjection}): test use only`);
  const neuron = await startNeuron({
    config: config.file.neuron,
    listen: config.neuronListen,
    ...(options.faultInjection === undefined ? {} : { faultInjection: options.faultInjection }),
  });
  return new Promise<number>((resolve) => {
    const shutdown = (signal: string) => {
      log.info(`${signal}: stopping`);
      neuron.stop().then(
        () => resolve(0),
        (error: unknown) => {
          log.error(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
          resolve(1);
        },
      );
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
  });
}
