/**
 * Runs test files again and again beside busy loops, to find tests that
 * pass on an idle machine only (a check that depends on load proves
 * nothing). Each run is its own `bun test` process, as in `npm test`.
 *
 *   bun scripts/test-under-load.ts [--runs N] [--busy N] <file filter>...
 *   bun scripts/test-under-load.ts --runs 1 --busy 2 --suite   # the whole `npm test` once
 *
 * Prints one line per run and ends with `N passed, N failed`.
 */
import { Glob } from "bun";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runs: { type: "string", default: "20" },
    busy: { type: "string", default: "2" },
    suite: { type: "boolean", default: false },
  },
  allowPositionals: true,
});
const runs = Number(values.runs);
const busy = Number(values.busy);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(busy) || busy < 0) {
  console.error("usage: bun scripts/test-under-load.ts [--runs N] [--busy N] (--suite | <file filter>...)");
  process.exit(2);
}
const root = `${import.meta.dir}/..`;
const files = values.suite
  ? []
  : [...new Glob("tests/**/*.test.ts").scanSync({ cwd: root })]
      .filter((file) => positionals.some((filter) => file.includes(filter)))
      .sort();
if (!values.suite && files.length === 0) {
  console.error(`no test file matches ${positionals.join(" ") || "(nothing given)"}`);
  process.exit(2);
}

// The load: processes that spin on a core each, like `yes > /dev/null`.
const loops = Array.from({ length: busy }, () =>
  Bun.spawn(["sh", "-c", "while :; do :; done"], { stdout: "ignore", stderr: "ignore" }),
);
let passed = 0;
let failed = 0;
try {
  for (let run = 1; run <= runs; run++) {
    const cmd = values.suite
      ? [process.execPath, `${root}/scripts/check.ts`]
      : [process.execPath, "test", "--timeout", "60000", ...files.map((f) => `./${f}`)];
    const proc = Bun.spawn(cmd, { cwd: root, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    if (code === 0) passed++;
    else failed++;
    console.log(`run ${run}/${runs}: ${code === 0 ? "pass" : `FAIL (exit ${code})`}`);
    if (code !== 0) {
      const saved = `${tmpdir()}/test-under-load-run-${run}.log`;
      writeFileSync(saved, `${out}\n${err}`);
      console.log(`whole output: ${saved}`);
      const failures = `${out}\n${err}`
        .split("\n")
        .filter((l) => /\(fail\)|error:|Expected|Received/.test(l));
      console.log(failures.slice(0, 30).join("\n"));
    }
  }
} finally {
  for (const loop of loops) loop.kill();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
