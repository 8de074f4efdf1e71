/**
 * `npm test`: every check CI runs, in order, failing fast on the cheap ones:
 * format, lint (warnings are errors), types, then the whole test suite.
 * Ends with one plain summary line, `N passed, N failed, N skipped`.
 */
const bin = (name: string) => `${import.meta.dir}/../node_modules/.bin/${name}`;

interface Step {
  name: string;
  cmd: string[];
}

const steps: Step[] = [
  { name: "format", cmd: [bin("biome"), "format", "."] },
  { name: "lint", cmd: [bin("biome"), "lint", "--error-on-warnings", "."] },
  { name: "types", cmd: [bin("tsc"), "--noEmit", "-p", "."] },
];

for (const step of steps) {
  const started = performance.now();
  const proc = Bun.spawnSync(step.cmd, { stdout: "inherit", stderr: "inherit" });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (proc.exitCode !== 0) {
    console.error(`check: ${step.name} failed (${seconds}s)`);
    process.exit(proc.exitCode ?? 1);
  }
  console.log(`check: ${step.name} ok (${seconds}s)`);
}

const testArgs = process.argv.slice(2);
const test = Bun.spawn([process.execPath, "test", ...testArgs], { stdout: "inherit", stderr: "pipe" });
// bun test writes its report to stderr; pass it through and keep the summary.
let tail = "";
const decoder = new TextDecoder();
for await (const chunk of test.stderr) {
  process.stderr.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4000);
}
const exitCode = await test.exited;
const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}$`, "m").exec(tail)?.[1] ?? 0);
console.log(`${count("pass")} passed, ${count("fail")} failed, ${count("skip")} skipped`);
process.exit(exitCode);
