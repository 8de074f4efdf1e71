/**
 * The processes the gateway benchmarks measure, each in its own process so
 * none shares an event loop with another or with the load generator: the
 * fake neuron, the gateway (`bun src/cli/main.ts serve`), and nginx as a
 * plain reverse proxy. All listen on 127.0.0.1 only.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FAKE_MODEL } from "./fake-upstream.ts";

const ROOT = join(import.meta.dir, "..");
const BUN = process.execPath;

/** A started process behind an HTTP base URL. */
export interface Service {
  readonly name: string;
  readonly url: string;
  /** The process serving it (with its child processes, e.g. nginx's workers); none for `direct`. */
  readonly pid?: number;
  /** Headers every request to it carries besides the content type (e.g. Portkey's routing headers). */
  readonly headers?: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `cortex-bench-${prefix}-`));
}

/** Polls `probe` until it resolves true, at most `timeoutMs`. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 20_000,
  alive?: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (alive && !alive()) throw new Error(`${what} exited before it was ready`);
    if (await probe().catch(() => false)) return;
    await Bun.sleep(50);
  }
  throw new Error(`${what} was not ready within ${timeoutMs} ms`);
}

async function stopChild(child: Bun.Subprocess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await child.exited;
  clearTimeout(timer);
}

/**
 * A spawned server in its own temp dir, as a Service once `chatWorks` answers;
 * stopped and cleaned up if it never does.
 */
export async function serviceWhenReady(
  name: string,
  child: Bun.Subprocess,
  url: string,
  dir: string,
  ready: () => Promise<boolean>,
  timeoutMs: number,
  headers?: Readonly<Record<string, string>>,
): Promise<Service> {
  const service: Service = {
    name,
    url,
    pid: child.pid,
    ...(headers ? { headers } : {}),
    async stop() {
      // SIGTERM: the gateway drains; nginx does a fast shutdown, its master taking the workers down.
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitUntil(name, ready, timeoutMs, () => child.exitCode === null);
  } catch (error) {
    await service.stop();
    throw error;
  }
  return service;
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true });
    const newline = text.indexOf("\n");
    if (newline >= 0) return text.slice(0, newline);
  }
  throw new Error("the process closed its stdout before printing its address");
}

/**
 * A bench script in its own Bun process that prints `{"url": …}` once it
 * listens and exits when our end of its stdin closes.
 */
async function startScript(
  name: string,
  script: string,
  args: string[],
  options: Pick<GatewayOptions, "env" | "stderrPath"> = {},
): Promise<Service> {
  const child = Bun.spawn([BUN, join(import.meta.dir, script), ...args], {
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
    stdin: "pipe",
    stdout: "pipe",
    stderr: options.stderrPath ? Bun.file(options.stderrPath) : "inherit",
  });
  const line = await firstLine(child.stdout);
  const { url } = JSON.parse(line) as { url: string };
  return {
    name,
    url,
    pid: child.pid,
    async stop() {
      await child.stdin.end();
      await stopChild(child);
    },
  };
}

/** bench/fake-upstream.ts, the fake neuron. */
export function startFakeUpstream(model = FAKE_MODEL): Promise<Service> {
  return startScript("fake upstream", "fake-upstream.ts", ["--model", model]);
}

/** bench/bun-proxy.ts in front of `upstreamUrl`: the floor for any proxy written on Bun. */
export function startBunProxy(
  upstreamUrl: string,
  options: Pick<GatewayOptions, "env" | "stderrPath"> = {},
): Promise<Service> {
  return startScript("bun-proxy", "bun-proxy.ts", [upstreamUrl], options);
}

/** A small chat request that must succeed once a proxy is ready. */
export async function chatWorks(
  url: string,
  model: string,
  headers?: Readonly<Record<string, string>>,
): Promise<boolean> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ model, max_tokens: 2, messages: [{ role: "user", content: "hi" }] }),
  });
  await response.arrayBuffer();
  return response.status === 200;
}

export interface GatewayOptions {
  upstreamUrl: string;
  model?: string;
  /** `[gateway] metrics`; the default (true) is what a deployment runs. */
  metrics?: boolean;
  /** `[log] level`: "info" writes one line per request. */
  logLevel?: string;
  /** Extra arguments for bun before the script (e.g. `--cpu-prof`). */
  bunArgs?: string[];
  cwd?: string;
  /** Another checkout's root to run the gateway from (an A/B of two trees); default this one. */
  root?: string;
  /** A built executable (`npm run build`'s dist/cortex) to run instead of the source with bun. */
  executable?: string;
  /** The Service's name; default "gateway". */
  name?: string;
  /** Extra environment (e.g. JSC's BUN_JSC_* options). */
  env?: Readonly<Record<string, string>>;
  /** Where the gateway's stderr goes (default: this process's). */
  stderrPath?: string;
}

/** `bun src/cli/main.ts serve --config <temp TOML>` (or a built executable's) in front of one neuron (the fake). */
export async function startGateway(options: GatewayOptions): Promise<Service> {
  const model = options.model ?? FAKE_MODEL;
  const dir = tempDir("gateway");
  const port = freePort();
  const metricsPort = freePort();
  const config = join(dir, "cortex.toml");
  writeFileSync(
    config,
    [
      "[log]",
      `level = ${JSON.stringify(options.logLevel ?? "warn")}`,
      "[gateway]",
      `listen = "127.0.0.1:${port}"`,
      `metrics_listen = "127.0.0.1:${metricsPort}"`,
      `metrics = ${options.metrics ?? true}`,
      // Enough admission slots that the rate runs never queue in the gateway.
      "max_concurrency_per_model = 256",
      "[[neurons]]",
      'name = "fake"',
      `endpoint = ${JSON.stringify(options.upstreamUrl)}`,
      "[[models]]",
      `id = ${JSON.stringify(model)}`,
      `file = ${JSON.stringify(`${model}.gguf`)}`,
      "",
    ].join("\n"),
  );
  const command = options.executable
    ? [options.executable]
    : [BUN, ...(options.bunArgs ?? []), join(options.root ?? ROOT, "src/cli/main.ts")];
  const child = Bun.spawn([...command, "serve", "--config", config], {
    cwd: options.cwd ?? dir,
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
    stdin: "ignore",
    stdout: "ignore",
    stderr: options.stderrPath ? Bun.file(options.stderrPath) : "inherit",
  });
  const url = `http://127.0.0.1:${port}`;
  return serviceWhenReady(options.name ?? "gateway", child, url, dir, () => chatWorks(url, model), 30_000);
}

/** Where nginx is, or undefined (the caller prints how to install it). */
export function findNginx(): string | undefined {
  return (
    Bun.which("nginx") ??
    Bun.which("nginx", { PATH: "/usr/sbin:/usr/local/sbin:/usr/local/nginx/sbin" }) ??
    undefined
  );
}

export const NGINX_INSTALL_HINT = "install it with: apt-get install -y nginx (Debian/Ubuntu)";

/**
 * nginx as a plain reverse proxy: keep-alive connections to the upstream,
 * no response buffering (so SSE passes through as it comes), no access log
 * (the gateway runs with per-request logging off too).
 */
export async function startNginx(options: {
  nginx: string;
  upstreamUrl: string;
  workers?: number;
}): Promise<Service> {
  const dir = tempDir("nginx");
  const port = freePort();
  const upstream = new URL(options.upstreamUrl);
  const conf = join(dir, "nginx.conf");
  const runningAsRoot = process.getuid?.() === 0;
  writeFileSync(
    conf,
    `${runningAsRoot ? "user root;\n" : ""}worker_processes ${options.workers ?? 1};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # Agent-sized request bodies (gateway-overhead --prompt-kib) stay in memory, as every other target keeps them.
  client_body_buffer_size 8m;
  client_max_body_size 0;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream neuron {
    server ${upstream.hostname}:${upstream.port};
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://neuron;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  );
  const child = Bun.spawn([options.nginx, "-p", dir, "-c", conf], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "inherit",
  });
  const url = `http://127.0.0.1:${port}`;
  return serviceWhenReady("nginx", child, url, dir, () => chatWorks(url, FAKE_MODEL), 10_000);
}

/** The fake upstream itself, as a target: what a client calling the neuron directly sees. */
export function direct(upstream: Service): Service {
  return { name: "direct", url: upstream.url, stop: async () => {} };
}
