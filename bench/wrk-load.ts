/**
 * wrk (a C load generator, Debian package `wrk`) as the one load generator
 * for every target: fixed connections, keep-alive, a POST body from a Lua
 * script whose `done` hook prints the numbers as one JSON line.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { tempDir } from "./bench-services.ts";

export const WRK_INSTALL_HINT = "install it with: apt-get install -y wrk (Debian/Ubuntu)";

export function findWrk(): string | undefined {
  return Bun.which("wrk") ?? undefined;
}

const WrkResult = z.object({
  requests: z.number(),
  durationUs: z.number(),
  /** Non-2xx/3xx answers. */
  statusErrors: z.number(),
  socketErrors: z.number(),
  p50Us: z.number(),
  p99Us: z.number(),
  meanUs: z.number(),
});

export interface LoadResult {
  requestsPerS: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  requests: number;
}

function luaString(text: string): string {
  return `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`;
}

function script(body: string, headers: Readonly<Record<string, string>>): string {
  const extra = Object.entries(headers)
    .map(([name, value]) => `wrk.headers[${luaString(name)}] = ${luaString(value)}\n`)
    .join("");
  return `wrk.method = "POST"
wrk.body = ${luaString(body)}
wrk.headers["Content-Type"] = "application/json"
${extra}done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"durationUs":%d,"statusErrors":%d,"socketErrors":%d,"p50Us":%d,"p99Us":%d,"meanUs":%f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
`;
}

/**
 * One wrk run of `durationS` seconds against `url` with `connections`
 * keep-alive connections on one wrk thread, every request POSTing `body`
 * (JSON, with `headers` besides the content type). Throws when any request failed, so a broken target never reports a rate.
 */
export async function runWrk(options: {
  wrk: string;
  url: string;
  body: string;
  headers?: Readonly<Record<string, string>>;
  connections: number;
  durationS: number;
  /** A run in which no request finished is a result (a rate of 0), not an error: for very slow targets. */
  allowNone?: boolean;
}): Promise<LoadResult> {
  const dir = tempDir("wrk");
  const lua = join(dir, "post.lua");
  writeFileSync(lua, script(options.body, options.headers ?? {}));
  try {
    const child = Bun.spawn(
      [
        options.wrk,
        "-t1",
        `-c${options.connections}`,
        `-d${options.durationS}s`,
        "--timeout",
        "10s",
        "-s",
        lua,
        options.url,
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, code] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    const line = out.split("\n").find((l) => l.startsWith("WRK_RESULT "));
    if (code !== 0 || line === undefined)
      throw new Error(`wrk failed (exit ${code}) against ${options.url}: ${err.trim() || out.trim()}`);
    const result = WrkResult.parse(JSON.parse(line.slice("WRK_RESULT ".length)));
    if (result.statusErrors > 0 || result.socketErrors > 0 || (result.requests === 0 && !options.allowNone))
      throw new Error(
        `wrk against ${options.url}: ${result.statusErrors} bad statuses, ${result.socketErrors} socket errors in ${result.requests} requests`,
      );
    return {
      requestsPerS: (result.requests * 1e6) / result.durationUs,
      p50Ms: result.p50Us / 1000,
      p99Ms: result.p99Us / 1000,
      meanMs: result.meanUs / 1000,
      requests: result.requests,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
