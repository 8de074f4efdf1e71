/**
 * The container image's file tree (scripts/assemble-image.ts, copied whole by
 * the Containerfile), run the way the chart runs it: as uid 10001, which owns
 * nothing in the tree, with HOME in a scratch folder. Base images cannot be
 * pulled here, so this is as close to the image as the project gets: the same
 * files, the same user, the same arguments.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { assembleImage } from "../../scripts/assemble-image.ts";

const ROOT = join(import.meta.dir, "../..");
const UID = 10001;
let work: string;
let tree: string;
let home: string;

/** setpriv drops to the image's user where this test runs as root (CI, here); otherwise as is. */
function asImageUser(cmd: string[]): string[] {
  if (process.getuid?.() !== 0 || Bun.which("setpriv") === null) return cmd;
  return ["setpriv", `--reuid=${UID}`, `--regid=${UID}`, "--clear-groups", ...cmd];
}

function imageEnv(): Record<string, string> {
  // The Containerfile's ENV, and nothing from this checkout.
  return { PATH: "/usr/bin:/bin", HOME: home };
}

beforeAll(() => {
  const build = Bun.spawnSync([process.execPath, "scripts/build.ts"], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (build.exitCode !== 0) throw new Error(`build failed:\n${build.stderr.toString()}`);
  work = mkdtempSync(join(tmpdir(), "cortex-image-"));
  // mkdtemp makes it 0700; the image's user must reach the tree inside, as it does /opt in the image.
  chmodSync(work, 0o755);
  tree = join(work, "rootfs");
  home = join(work, "home");
  assembleImage({ dist: join(ROOT, "dist"), out: tree, variant: "cpu" });
  Bun.spawnSync(["mkdir", "-p", home]);
  if (process.getuid?.() === 0) chownSync(home, UID, UID);
}, 120_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("the image's file tree", () => {
  test("holds the executable and the CPU native set, no CUDA set, and the Containerfile copies it", () => {
    expect(existsSync(join(tree, "opt/cortex/cortex"))).toBe(true);
    expect(existsSync(join(tree, "opt/cortex/native/libggml-base.so"))).toBe(true);
    expect(existsSync(join(tree, "opt/cortex/native/shim.c"))).toBe(true);
    expect(existsSync(join(tree, "opt/cortex/native/cuda"))).toBe(false);
    const containerfile = readFileSync(join(ROOT, "Containerfile"), "utf8");
    expect(containerfile).toMatch(/^COPY dist\/image\/\$\{VARIANT\}\/ \/$/m);
    expect(containerfile).toContain('ENTRYPOINT ["/opt/cortex/cortex"]');
    expect(containerfile).not.toMatch(/^ENV[^\n]*CORTEX_/m);
  });

  test("the cuda variant without a CUDA set is refused, naming what to run", () => {
    expect(() =>
      assembleImage({ dist: join(ROOT, "dist"), out: join(work, "cuda"), variant: "cuda" }),
    ).toThrow("npm run setup:cuda");
  });

  test("`cortex --version` runs from the tree as the image's user", () => {
    const proc = Bun.spawnSync(asImageUser([join(tree, "opt/cortex/cortex"), "--version"]), {
      cwd: home,
      env: imageEnv(),
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(proc.stderr.toString()).toBe("");
    expect(proc.stdout.toString().trim()).toBe(pkg.version);
    expect(proc.exitCode).toBe(0);
  });

  test("a neuron from the tree serves the demo model: /live, /ready and /health answer, and SIGTERM stops it", async () => {
    const child = Bun.spawn(
      asImageUser([
        join(tree, "opt/cortex/cortex"),
        "neuron",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "text",
      ]),
      {
        cwd: home,
        env: { ...imageEnv(), CORTEX_NEURON_TOKEN: "image-test" },
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    let output = "";
    const decoder = new TextDecoder();
    const port = await new Promise<string>((resolve, reject) => {
      const read = async (stream: ReadableStream<Uint8Array>) => {
        for await (const chunk of stream) {
          output += decoder.decode(chunk, { stream: true });
          const match = /listening on 127\.0\.0\.1:(\d+)/.exec(output);
          if (match?.[1]) resolve(match[1]);
        }
      };
      Promise.all([read(child.stdout), read(child.stderr)]).then(() =>
        reject(new Error(`the neuron exited before listening:\n${output}`)),
      );
    });
    try {
      const url = `http://127.0.0.1:${port}`;
      expect((await fetch(`${url}/live`)).status).toBe(200);
      expect((await fetch(`${url}/ready`)).status).toBe(200);
      const health = (await (await fetch(`${url}/health`)).json()) as {
        status: string;
        version: string;
        loaded: Array<{ id: string; state: string }>;
      };
      expect(health.status).toBe("ok");
      expect(health.version).toBe(pkg.version);
      // The demo model was generated under HOME (the only place the image's user may write) and loaded.
      expect(health.loaded.map((m) => m.state)).toEqual(["ready"]);
      expect(existsSync(join(home, ".cache/cortex/models"))).toBe(true);
      // ... by the image's user, not root.
      if (process.getuid?.() === 0) expect(statSync(join(home, ".cache/cortex/models")).uid).toBe(UID);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await child.exited).toBe(0);
  }, 60_000);
});
