import type { ConsolaInstance } from "consola";
import { errorMessage } from "./errors.ts";

/**
 * Keeps a server up until SIGINT or SIGTERM, then stops it: exit code 0
 * after a clean stop, 1 when stopping failed (systemd then sees the failure).
 */
export function runUntilSignal(stop: () => Promise<void>, log: ConsolaInstance): Promise<number> {
  return new Promise<number>((resolve) => {
    const shutdown = (signal: string) => {
      log.info(`${signal}: stopping`);
      stop().then(
        () => resolve(0),
        (error: unknown) => {
          log.error(`shutdown failed: ${errorMessage(error)}`);
          resolve(1);
        },
      );
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
  });
}
