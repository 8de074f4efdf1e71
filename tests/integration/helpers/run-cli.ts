/**
 * `cortex <args>` from source, as an operator runs it, with the environment
 * that could point it elsewhere (an admin token, a gateway URL) cleared and
 * colour off, so its output is what a test can read.
 */
const ROOT = `${import.meta.dir}/../../..`;

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(...args: string[]): Promise<CliRun> {
  const proc = Bun.spawn([process.execPath, "src/cli/main.ts", ...args], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, CORTEX_ADMIN_TOKEN: "", CORTEX_GATEWAY_URL: "", NO_COLOR: "1" },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}
