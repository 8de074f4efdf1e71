/**
 * A real redis-server for a test file: Debian's package, unpacked into
 * .cache/redis by `npm test`'s setup (scripts/fetch-redis.ts), started on a
 * free loopback port with its own temp dir and no persistence. Ready when it
 * says so on stdout (an event, not a poll). Where no server can be had,
 * `redisSkipReason` says why and the tests skip.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REDIS_LIBS, REDIS_SERVER } from "../../../scripts/fetch-redis.ts";

/** Why the Redis tests cannot run here, or undefined when they can. */
export const redisSkipReason: string | undefined = existsSync(REDIS_SERVER)
  ? undefined
  : `no redis-server at ${REDIS_SERVER}: run \`bun scripts/fetch-redis.ts\` (npm test does; it needs apt-get download)`;

export interface RedisServer {
  url: string;
  port: number;
  /** Stops the server; `start` brings it back on the same port (empty: no persistence). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open and nothing is answered; `resume` thaws it. */
  pause(): void;
  resume(): void;
  /** Stops it for good and removes its dir. */
  dispose(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function launch(port: number, dir: string): Promise<Bun.Subprocess<"ignore", "pipe", "pipe">> {
  const proc = Bun.spawn(
    [
      REDIS_SERVER,
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
    ],
    { env: { ...process.env, LD_LIBRARY_PATH: REDIS_LIBS }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  // Ready when it logs "Ready to accept connections"; an exit first is a failure, with its output.
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let seen = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += decoder.decode(value, { stream: true });
    if (seen.includes("Ready to accept connections")) {
      // Keep draining so a full pipe never blocks the server.
      void (async () => {
        while (!(await reader.read()).done);
      })();
      return proc;
    }
  }
  const stderr = await new Response(proc.stderr).text();
  throw new Error(`redis-server on port ${port} exited before it was ready: ${seen}${stderr}`);
}

export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), "cortex-redis-"));
  const port = await freePort();
  let proc: Bun.Subprocess | undefined = await launch(port, dir);
  const stop = async () => {
    if (proc === undefined) return;
    proc.kill("SIGKILL");
    await proc.exited;
    proc = undefined;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    async start() {
      if (proc === undefined) proc = await launch(port, dir);
    },
    pause() {
      proc?.kill("SIGSTOP");
    },
    resume() {
      proc?.kill("SIGCONT");
    },
    async dispose() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
