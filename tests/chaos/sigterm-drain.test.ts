/**
 * The processes themselves: a server that would be open to the network is
 * refused at start (exit 2, naming the setting), and SIGTERM drains a real
 * `cortex neuron` and a real `cortex serve`: a running stream finishes, new
 * work is refused meanwhile, and the process exits 0.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { noEndBias } from "../integration/helpers/real-fleet.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";

const root = join(import.meta.dir, "../..");
let dir: string;
let models: string;
let noEnd: Record<string, number>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cortex-sigterm-"));
  models = join(dir, "models");
  await ensureDemoModel(models);
  noEnd = await noEndBias(join(models, TINY_MODEL_FILE));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function spawnCortex(args: string[], env: Record<string, string> = {}) {
  return Bun.spawn([process.execPath, "src/cli/main.ts", ...args], {
    cwd: root,
    env: { ...process.env, CORTEX_LOG_LEVEL: "info", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
}

async function exitOf(args: string[], env: Record<string, string> = {}) {
  const proc = spawnCortex(args, env);
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  return { code, stderr };
}

/** Reads the process's log until a line matches; resolves with the match. Keeps reading after. */
function logWatcher(proc: ReturnType<typeof spawnCortex>) {
  let text = "";
  const waiters: Array<{ pattern: RegExp; resolve: (match: RegExpMatchArray) => void }> = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      for (const waiter of [...waiters]) {
        const match = text.match(waiter.pattern);
        if (match) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(match);
        }
      }
    }
  };
  const done = Promise.all([pump(proc.stdout), pump(proc.stderr)]);
  return {
    done,
    text: () => text,
    until(pattern: RegExp): Promise<RegExpMatchArray> {
      const match = text.match(pattern);
      if (match) return Promise.resolve(match);
      return new Promise((resolve) => waiters.push({ pattern, resolve }));
    },
  };
}

test("a gateway listening on every interface with no api_keys is refused: exit 2 naming the flag and the way out", async () => {
  const config = join(dir, "open.toml");
  writeFileSync(
    config,
    '[gateway]\nmetrics = false\n[[neurons]]\nname = "gone"\nendpoint = "http://127.0.0.1:9"\n',
  );
  const { code, stderr } = await exitOf(["serve", "--config", config, "--listen", "0.0.0.0:0"]);
  expect(stderr).toContain(
    "--listen: 0.0.0.0:0 is reachable from other machines and gateway.api_keys is empty",
  );
  expect(stderr).toContain("gateway.allow_unauthenticated = true");
  expect(code).toBe(2);
});

test("a neuron listening on every interface with no auth_token is refused: exit 2 naming the key", async () => {
  const config = join(dir, "neuron.toml");
  writeFileSync(config, `[neuron]\nlisten = "0.0.0.0:0"\nmodels_dir = ${JSON.stringify(models)}\n`);
  const { code, stderr } = await exitOf(["neuron", "--config", config]);
  expect(stderr).toContain("neuron.toml: neuron.listen: 0.0.0.0:0 is reachable from other machines");
  expect(stderr).toContain("neuron.auth_token");
  expect(code).toBe(2);
});

/** A stream with its end token banned, read up to its first token. */
async function openStream(url: string, headers: Record<string, string>, model: string) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({
      model,
      stream: true,
      max_tokens: 300,
      logit_bias: noEnd,
      messages: [{ role: "user", content: "Tell me about the garden." }],
    }),
  });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const first = await reader.read();
  expect(first.done).toBe(false);
  return {
    /** Everything after the first chunk, to the end. */
    async rest(): Promise<string> {
      const decoder = new TextDecoder();
      let text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return text;
        text += decoder.decode(value, { stream: true });
      }
    },
  };
}

test("SIGTERM drains a neuron: /health says draining, new work gets a retryable 503, the running stream ends, exit 0", async () => {
  const token = "drain-test-token";
  const proc = spawnCortex(["neuron", "--listen", "127.0.0.1:0", "--models-dir", models], {
    CORTEX_NEURON_TOKEN: token,
  });
  const log = logWatcher(proc);
  const [, port] = await log.until(/listening on 127\.0\.0\.1:(\d+)/);
  const base = `http://127.0.0.1:${port}`;
  const auth = { authorization: `Bearer ${token}` };
  const load = await fetch(`${base}/models/load`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ id: "tiny", file: TINY_MODEL_FILE, contextSize: 2048 }),
  });
  expect(load.ok).toBe(true);
  const stream = await openStream(`${base}/v1/chat/completions`, auth, "tiny");

  proc.kill("SIGTERM");
  await log.until(/draining: 1 request\(s\) in flight/);
  const health = (await (await fetch(`${base}/health`)).json()) as { status: string };
  expect(health.status).toBe("draining");
  const refused = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }] }),
  });
  expect(refused.status).toBe(503);
  expect(refused.headers.get("retry-after")).toBe("1");
  expect(await refused.text()).toContain("draining");

  const rest = await stream.rest();
  expect(rest.trimEnd().endsWith("data: [DONE]")).toBe(true);
  expect(rest).not.toContain('"error"');
  expect(await proc.exited).toBe(0);
  await log.done;
  expect(log.text()).toContain("drained: every request finished");
}, 60_000);

test("SIGTERM drains `cortex serve`: /health answers 503 draining, the running stream ends, exit 0", async () => {
  const config = join(dir, "serve.toml");
  // drain_delay_s keeps the listener open after SIGTERM long enough to read /health; the stream ends either way.
  writeFileSync(
    config,
    `[gateway]\nlisten = "127.0.0.1:0"\nmetrics = false\ndrain_delay_s = 60\n[neuron]\nmodels_dir = ${JSON.stringify(models)}\n`,
  );
  const proc = spawnCortex(["serve", "--config", config]);
  const log = logWatcher(proc);
  const [, port] = await log.until(/gateway \S+ listening on 127\.0\.0\.1:(\d+)/);
  const base = `http://127.0.0.1:${port}`;
  const stream = await openStream(`${base}/v1/chat/completions`, {}, TINY_MODEL_FILE.replace(/\.gguf$/, ""));

  proc.kill("SIGTERM");
  await log.until(/draining: \/health says so/);
  const health = await fetch(`${base}/health`);
  expect(health.status).toBe(503);
  expect(((await health.json()) as { status: string }).status).toBe("draining");
  const rest = await stream.rest();
  expect(rest.trimEnd().endsWith("data: [DONE]")).toBe(true);
  // Past the stream, a second SIGTERM ends the drain delay's wait: the process must not hang on it.
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
}, 60_000);
