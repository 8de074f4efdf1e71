/**
 * llama-server as the benchmarks' peer: started on a free loopback port with
 * the settings that make it comparable to a cortex neuron (same threads,
 * slots, per-slot context, batch and host prompt cache), awaited until its
 * /health answers, and stopped when the run is done.
 */
import { freePort, waitUntil } from "../bench-services.ts";

export interface LlamaServerOptions {
  /** The llama-server binary (peers/build-llama-server.ts). */
  server: string;
  model: string;
  threads: number;
  slots: number;
  /** Per slot, as cortex counts it (llama-server splits -c over its slots). */
  contextSize: number;
  /** -b and -ub; llama-server's own (2048, 512) when absent. */
  batch?: number;
  /** --cache-ram; llama-server's own (8192 MiB) when absent. */
  cacheMiB?: number;
  /** Flags after the common ones (`--jinja`, …). */
  extra?: string[];
}

/** The command line that starts llama-server on `port` with `options`. */
export function llamaServerCommand(options: LlamaServerOptions, port: number): string[] {
  return [
    options.server,
    "-m",
    options.model,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "-t",
    String(options.threads),
    "-tb",
    String(options.threads),
    "-np",
    String(options.slots),
    "-c",
    String(options.contextSize * options.slots),
    ...(options.batch === undefined ? [] : ["-b", String(options.batch), "-ub", String(options.batch)]),
    ...(options.cacheMiB === undefined ? [] : ["--cache-ram", String(options.cacheMiB)]),
    ...(options.extra ?? []),
    "--no-webui",
  ];
}

export async function withLlamaServer<T>(
  options: LlamaServerOptions & { /** Where its log goes. */ log: string },
  run: (url: string) => Promise<T>,
): Promise<T> {
  const port = freePort();
  const child = Bun.spawn(llamaServerCommand(options, port), {
    stdout: "ignore",
    stderr: Bun.file(options.log),
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      "llama-server",
      async () => (await fetch(`${url}/health`)).ok,
      120_000,
      () => child.exitCode === null,
    );
    return await run(url);
  } finally {
    child.kill();
    await child.exited;
  }
}
