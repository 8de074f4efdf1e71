/**
 * The compiled executable, as a user runs it: build once, then --version,
 * --help and a bad config (exit code 2 with the file, key and expectation),
 * and the binary copied elsewhere with its native/ folder serving a real chat.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };

const root = join(import.meta.dir, "../..");
const binary = join(root, "dist/cortex");

function run(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawnSync([binary, ...args], {
    cwd: tmpdir(),
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
}

beforeAll(() => {
  const build = Bun.spawnSync([process.execPath, "scripts/build.ts"], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (build.exitCode !== 0) throw new Error(`build failed:\n${build.stderr.toString()}`);
}, 120_000);

describe("dist/cortex", () => {
  test("--version prints the package version", () => {
    const result = run(["--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(pkg.version);
  });

  test("--help lists every command, and each command has its own help", () => {
    const top = run(["--help"]);
    expect(top.code).toBe(0);
    for (const command of ["serve", "neuron", "status", "models"]) expect(top.stdout).toContain(command);
    const neuron = run(["neuron", "--help"]);
    expect(neuron.code).toBe(0);
    expect(neuron.stdout).toContain("--models-dir");
    const ls = run(["models", "ls", "--help"]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain("--json");
  });

  test("a bad config exits 2 naming the file, the key and what was expected", () => {
    const dir = mkdtempSync(join(tmpdir(), "cortex-bin-"));
    const path = join(dir, "cortex.toml");
    writeFileSync(path, `[eviction]\nstrategy = "fifo"\n`);
    const result = run(["serve", "--config", path]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'cortex.toml: eviction.strategy: expected "lru" or "priority", got "fifo"',
    );
  });

  test("an unknown command is a usage error", () => {
    expect(run(["frobnicate"]).code).toBe(2);
  });

  test("status against no gateway says so and exits 3", () => {
    const result = run(["status", "--gateway", "http://127.0.0.1:9"]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain("cannot reach the gateway at http://127.0.0.1:9");
  });

  test("copied elsewhere with native/ beside it, `serve` answers a chat, `status` sees it, SIGTERM exits 0", async () => {
    // Far from the checkout, so nothing can fall back to node_modules or src/.
    const install = mkdtempSync(join(tmpdir(), "cortex-install-"));
    cpSync(join(root, "dist"), install, { recursive: true });
    const config = join(install, "cortex.toml");
    writeFileSync(config, `[gateway]\nlisten = "127.0.0.1:0"\nmetrics_listen = "127.0.0.1:0"\n`);
    const proc = Bun.spawn([join(install, "cortex"), "serve", "--config", config], {
      cwd: install,
      stdin: "ignore",
      env: { ...process.env, XDG_CACHE_HOME: join(install, "cache"), CORTEX_LOG_LEVEL: "info" },
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      const url = await waitForListening(proc);
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "cortex-tiny",
          messages: [{ role: "user", content: "Tell me about the cat." }],
          max_tokens: 12,
        }),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as {
        choices: Array<{ message: { content: string } }>;
        usage: { completion_tokens: number };
      };
      expect(body.choices[0]?.message.content.length).toBeGreaterThan(0);
      expect(body.usage.completion_tokens).toBeGreaterThan(0);

      const status = Bun.spawn([join(install, "cortex"), "status", "--json", "--gateway", url], {
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(await status.exited).toBe(0);
      const fleet = JSON.parse(await new Response(status.stdout).text()) as {
        nodes: Array<{ name: string; state: string; loaded: Array<{ id: string }> }>;
      };
      expect(fleet.nodes.map((n) => [n.name, n.state])).toEqual([["local", "up"]]);
      expect(fleet.nodes[0]?.loaded.map((m) => m.id)).toContain("cortex-tiny");

      // The dashboard travels inside the binary: its bundle comes from no file beside it.
      const page = await fetch(`${url}/ui`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('src="/ui/app.js"');
      const script = await fetch(`${url}/ui/app.js`);
      expect(script.headers.get("content-type")).toContain("text/javascript");
      expect(await script.text()).toContain("/admin/overview");
      expect(await (await fetch(`${url}/ui/app.css`)).text()).toContain("--accent");

      // So does the API description, though its plugin is only imported on the first /docs request.
      const spec = await fetch(`${url}/docs/json`);
      expect(spec.status).toBe(200);
      expect(Object.keys(((await spec.json()) as { paths: object }).paths)).toContain("/v1/chat/completions");
    } finally {
      proc.kill("SIGTERM");
    }
    expect(await proc.exited).toBe(0);
  }, 60_000);
});

/**
 * Drains both output streams (a full pipe would block the server) and resolves as soon as the
 * gateway says where it listens; rejects when both streams end without saying it.
 */
function waitForListening(proc: Bun.Subprocess<"ignore", "pipe", "pipe">): Promise<string> {
  let seen = "";
  const { promise, resolve, reject } = Promise.withResolvers<string>();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      seen += decoder.decode(chunk, { stream: true });
      const match = /gateway \S+ listening on ([\d.]+:\d+)/.exec(seen);
      if (match) resolve(`http://${match[1]}`);
    }
  };
  void Promise.all([drain(proc.stdout), drain(proc.stderr)]).then(() =>
    reject(new Error(`the gateway never said it was listening:\n${seen}`)),
  );
  return promise;
}
