/**
 * Model pulls through the gateway, on two real neurons and a Hugging Face
 * Hub on loopback (helpers/fake-hub.ts lists the documented hub behaviours
 * it reproduces): a `[[models]]` profile with a `source` pulled on demand
 * when a request needs it (waiters bounded with Retry-After, as for a cold
 * load), and the operator's `cortex models pull` / `cortex models rm` /
 * `cortex status` as a shell sees them (not a terminal: one line per change).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { FleetNode } from "../../src/core/admin-api.ts";
import { type FakeHub, startFakeHub } from "./helpers/fake-hub.ts";
import { type CliRun, runCli } from "./helpers/run-cli.ts";
import { chat } from "./helpers/gateway-requests.ts";
import { makePullModels } from "./helpers/pull-models.ts";
import { configToml, FLEET_SIZING, RealFleet, type TestGateway } from "./helpers/real-fleet.ts";

const ROOT = `${import.meta.dir}/../..`;

let hub: FakeHub;
let fleet: RealFleet;
let gateway: TestGateway;
/** Same fleet, with load_timeout_s = 1: requests give up on a pull that is held. */
let impatient: TestGateway;

const sourced = (id: string, source: string, extra: Record<string, unknown> = {}) => ({
  id,
  source,
  context_size: 512,
  slots: 1,
  vram_estimate: FLEET_SIZING.vramEstimate,
  ...extra,
});

function cli(...args: string[]): Promise<CliRun> {
  return runCli(...args, "--gateway", gateway.url);
}

const cdnGets = (object: string) =>
  hub.requests.filter((request) => request.path.startsWith("/cdn/") && request.object === object);

beforeAll(async () => {
  const models = await makePullModels();
  hub = startFakeHub();
  hub.addRepo("acme/tiny-GGUF", { "tiny-Q4_K_M.gguf": models.tiny, "tiny-Q8_0.gguf": models.tinyOther });
  hub.addRepo("acme/held-GGUF", { "held-Q4_K_M.gguf": models.tiny });
  hub.addRepo("acme/status-GGUF", { "status-Q4_K_M.gguf": models.tinyOther });
  const neuronConfig = { hf_endpoint: hub.url, pull_keep_free: 0 };
  fleet = await RealFleet.start([
    { name: "n1", files: [], config: neuronConfig },
    { name: "n2", files: [], config: neuronConfig },
  ]);
  const models_ = [
    sourced("tiny-pulled", "hf:acme/tiny-GGUF:Q4_K_M", { affinity: ["n2"] }),
    sourced("held", "hf:acme/held-GGUF:Q4_K_M", { affinity: ["n1"] }),
  ];
  gateway = await fleet.gateway({ toml: configToml({ models: models_ }) });
  impatient = await fleet.gateway({ toml: configToml({ models: models_, gateway: { load_timeout_s: 1 } }) });
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
  hub?.stop();
});

describe("pull on demand", () => {
  test("a request for a sourced model the node lacks pulls it there, loads it, and is answered", async () => {
    // Offered before any node has its file.
    const catalogue = (await (await fetch(`${gateway.url}/v1/models`)).json()) as {
      data: Array<{ id: string }>;
    };
    expect(catalogue.data.map((entry) => entry.id)).toEqual(expect.arrayContaining(["tiny-pulled", "held"]));
    const response = await chat(gateway.url, "tiny-pulled");
    expect(response.status).toBe(200);
    expect(await readdir(join(fleet.dir, "n2", "acme/tiny-GGUF"))).toEqual(["tiny-Q4_K_M.gguf"]);
    expect(cdnGets("acme/tiny-GGUF/tiny-Q4_K_M.gguf").length).toBe(1);
    // Now it is there: the next request is served without another download.
    expect((await chat(gateway.url, "tiny-pulled")).status).toBe(200);
    expect(cdnGets("acme/tiny-GGUF/tiny-Q4_K_M.gguf").length).toBe(1);
  });

  test("waiters give up on a slow pull with 503 and Retry-After; the pull goes on and the model is served", async () => {
    const gate = hub.hold("acme/held-GGUF", "held-Q4_K_M.gguf");
    const refused = await chat(impatient.url, "held");
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Let the download through: the load the refused request started goes on, pull included, and serves.
    for (let i = 0; i < 100; i++) gate.release();
    await impatient.running.whenFleet((nodes) =>
      nodes.some((node) => node.loaded.some((model) => model.id === "held" && model.state === "ready")),
    );
    const served = await chat(impatient.url, "held");
    expect(served.status).toBe(200);
    expect(cdnGets("acme/held-GGUF/held-Q4_K_M.gguf").length).toBe(1);
  });
});

describe("cortex models pull / rm and cortex status", () => {
  test("models pull shows each node's progress to the end and exits 0", async () => {
    const { code, stdout, stderr } = await cli(
      "models",
      "pull",
      "acme/tiny-GGUF:q8_0",
      "--node",
      "n1",
      "--node=n2",
    );
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.trim().split("\n");
    for (const node of ["n1", "n2"])
      expect(
        lines.some(
          (line) => line.startsWith(`${node}  [`) && line.endsWith("done: acme/tiny-GGUF/tiny-Q8_0.gguf"),
        ),
      ).toBe(true);
    // Not a terminal: plain lines, no cursor movement.
    expect(stdout).not.toContain("\x1b[");
    for (const node of ["n1", "n2"])
      expect(await readdir(join(fleet.dir, node, "acme/tiny-GGUF"))).toContain("tiny-Q8_0.gguf");
  });

  // `script` runs the command on a pseudo-terminal: what an operator at a shell sees.
  test.skipIf(Bun.which("script") === null)(
    "on a terminal, models pull redraws one line per node in place",
    async () => {
      const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;
      const command = [process.execPath, "src/cli/main.ts", "models", "pull", "acme/tiny-GGUF:Q4_K_M"]
        .concat(["--node", "n1,n2", "--gateway", gateway.url])
        .map(quote)
        .join(" ");
      const proc = Bun.spawn(["script", "-qefc", command, "/dev/null"], {
        cwd: ROOT,
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, CORTEX_ADMIN_TOKEN: "", CORTEX_GATEWAY_URL: "", TERM: "xterm" },
      });
      const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      expect(code).toBe(0);
      // Each redraw moves up over the two lines it drew and clears them.
      expect(stdout).toContain("\x1b[2F\x1b[2K");
      const last = stdout.split("\x1b[2F").at(-1) ?? "";
      expect(last).toMatch(/n1 {2}\[#{20}\] 100% .* done: acme\/tiny-GGUF\/tiny-Q4_K_M\.gguf/);
      // n2 pulled it on demand earlier: nothing to download there.
      expect(last).toContain("done: acme/tiny-GGUF/tiny-Q4_K_M.gguf (already present)");
    },
  );

  test("models pull of something the hub does not have fails with the hub's reason and exit 1", async () => {
    const { code, stderr } = await cli("models", "pull", "acme/tiny-GGUF:IQ1_S", "--node", "n1");
    expect(code).toBe(1);
    expect(stderr).toContain("no GGUF in acme/tiny-GGUF matches the tag");
    expect(stderr).toContain("tiny-Q4_K_M.gguf, tiny-Q8_0.gguf");
  });

  test("cortex status lists a pull in flight", async () => {
    const gate = hub.hold("acme/status-GGUF", "status-Q4_K_M.gguf");
    gate.release();
    const start = await fetch(`${gateway.url}/admin/models/pull`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ source: "acme/status-GGUF:Q4_K_M", nodes: ["n1"] }),
    });
    expect(start.status).toBe(200);
    const downloading = (nodes: FleetNode[]) =>
      nodes.some((node) =>
        node.pulls?.some((p) => p.source === "acme/status-GGUF:Q4_K_M" && p.bytesDone > 0),
      );
    await gateway.running.whenFleet(downloading);
    const { code, stdout } = await cli("status");
    expect(code).toBe(0);
    expect(stdout).toMatch(/PULL\s+SOURCE\s+STATE/);
    expect(stdout).toMatch(/n1\s+acme\/status-GGUF:Q4_K_M\s+downloading/);
    for (let i = 0; i < 100; i++) gate.release();
    await gateway.running.whenFleet((nodes) =>
      nodes.some((node) =>
        node.pulls?.some((p) => p.source === "acme/status-GGUF:Q4_K_M" && p.state === "done"),
      ),
    );
  });

  test("models rm deletes a file where it is not loaded and refuses a loaded model's", async () => {
    const removed = await cli("models", "rm", "acme/tiny-GGUF/tiny-Q8_0.gguf", "--node", "n2");
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain("removed acme/tiny-GGUF/tiny-Q8_0.gguf on n2");
    expect(await readdir(join(fleet.dir, "n2", "acme/tiny-GGUF"))).toEqual(["tiny-Q4_K_M.gguf"]);
    const loaded = await cli("models", "rm", "tiny-pulled");
    expect(loaded.code).toBe(1);
    expect(loaded.stderr).toContain("HTTP 409");
    expect(loaded.stderr).toContain("unload it first");
  });
});
