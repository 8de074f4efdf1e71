/**
 * A Bun macro (imported `with { type: "macro" }` by client-assets.ts): runs
 * scripts/build-ui.ts, which bundles the dashboard's browser code with
 * Bun.build, and inlines the result, so the page travels inside the
 * compiled binary and needs no files or network at run time. Bun.build
 * cannot run inside a macro (the bundler waits on the macro), hence the
 * child process.
 */
export function bundleClient(): { js: string; css: string } {
  const script = `${import.meta.dir}/../../../scripts/build-ui.ts`;
  const proc = Bun.spawnSync([process.execPath, script, "--json"], { stdout: "pipe", stderr: "pipe" });
  if (proc.exitCode !== 0) throw new Error(`bundling the dashboard failed:\n${proc.stderr.toString()}`);
  return JSON.parse(proc.stdout.toString()) as { js: string; css: string };
}
