import { EXIT, ExitError } from "../cli/exit-codes.ts";
import type { LoadedConfig } from "../core/config/load-config.ts";

/** Starts the neuron daemon and resolves with an exit code when it stops. */
export async function runNeuron(
  _config: LoadedConfig,
  _options: { faultInjection?: string | undefined },
): Promise<number> {
  throw new ExitError("the neuron is not built yet", EXIT.failure);
}
