import type { ConsolaInstance } from "consola";
import { errorMessage } from "./errors.ts";

/**
 * Keeps a server up until SIGINT or SIGTERM, then stops it: exit code 0
 * after a clean stop, 1 when stopping failed (systemd then sees the failure).
 * A second signal while stopping aborts `hurry`: a drain that waits for
 * requests to finish stops waiting (an operator pressing Ctrl-C twice).
 */
export function runUntilSignal(
  stop: (hurry: AbortSignal) => Promise<void>,
  log: ConsolaInstance,
): Promise<number> {
  return new Promise<number>((resolve) => {
    const hurry = new AbortController();
    let stopping = false;
    const onSignal = (signal: string) => {
      if (stopping) {
        log.warn(`${signal} again: stopping now, without waiting for running requests`);
        hurry.abort();
        return;
      }
      stopping = true;
      log.info(`${signal}: stopping`);
      stop(hurry.signal).then(
        () => {
          process.off("SIGINT", onInt);
          process.off("SIGTERM", onTerm);
          resolve(0);
        },
        (error: unknown) => {
          log.error(`shutdown failed: ${errorMessage(error)}`);
          resolve(1);
        },
      );
    };
    const onInt = () => onSignal("SIGINT");
    const onTerm = () => onSignal("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
  });
}
