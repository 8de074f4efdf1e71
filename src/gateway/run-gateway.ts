import { EXIT, ExitError } from "../cli/exit-codes.ts";
import type { LoadedConfig } from "../core/config/load-config.ts";

/** Starts the gateway and resolves with an exit code when it stops. */
export async function runGateway(_config: LoadedConfig): Promise<number> {
  throw new ExitError("the gateway is not built yet", EXIT.failure);
}
