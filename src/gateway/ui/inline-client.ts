/**
 * A Bun macro (imported `with { type: "macro" }` by embedded-assets.ts):
 * runs scripts/build-ui.ts (bundle-client.ts) at build time and inlines its
 * output, so the compiled binary serves the page with no files and no
 * network. Bun.build cannot run inside a macro (the bundler would wait on
 * itself), hence the child process.
 */
export function inlineClient(): { js: string; css: string } {
  const script = `${import.meta.dir}/../../../scripts/build-ui.ts`;
  const proc = Bun.spawnSync([process.execPath, script, "--json"], { stdout: "pipe", stderr: "pipe" });
  if (proc.exitCode !== 0) throw new Error(`bundling the dashboard failed:\n${proc.stderr.toString()}`);
  return JSON.parse(proc.stdout.toString()) as { js: string; css: string };
}
