/**
 * The compiled executable, as a user runs it: build once, then --version,
 * --help and a bad config (exit code 2 with the file, key and expectation).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
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
});
