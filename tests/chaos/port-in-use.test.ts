/**
 * Issue 18 §2: a second gateway or neuron on an address already taken bound
 * it too (Elysia's Bun adapter asks for `reusePort`) and the kernel split the
 * traffic between the two. Each must exit 1 naming the address instead.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "../..");
let dir: string;
/** Holds the port the way a first instance did: asking for SO_REUSEPORT itself. */
let first: ReturnType<typeof Bun.serve>;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cortex-port-"));
  first = Bun.serve({ hostname: "127.0.0.1", port: 0, reusePort: true, fetch: () => new Response("first") });
});

afterAll(() => {
  first?.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

async function runCortex(args: string[], env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, "src/cli/main.ts", ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  return { code, stderr };
}

test("a gateway on a taken port exits 1 naming the address", async () => {
  const config = join(dir, "gateway.toml");
  // A neuron that refuses connections: no in-process neuron to start.
  writeFileSync(
    config,
    '[gateway]\nmetrics = false\n[[neurons]]\nname = "gone"\nendpoint = "http://127.0.0.1:9"\n',
  );
  const { code, stderr } = await runCortex(
    ["serve", "--config", config, "--listen", `127.0.0.1:${first.port}`],
    {},
  );
  expect(stderr).toContain(`error: gateway.listen 127.0.0.1:${first.port}: address already in use`);
  expect(stderr).not.toContain("    at ");
  expect(code).toBe(1);
  expect(await (await fetch(`http://127.0.0.1:${first.port}/`)).text()).toBe("first");
});

test("a neuron on a taken port exits 1 naming the address", async () => {
  const { code, stderr } = await runCortex(["neuron", "--listen", `127.0.0.1:${first.port}`], {
    CORTEX_MODELS_DIR: dir,
  });
  expect(stderr).toContain(`error: neuron.listen 127.0.0.1:${first.port}: address already in use`);
  expect(stderr).not.toContain("    at ");
  expect(code).toBe(1);
});
