/**
 * Finds, or installs, the headless Chromium the dashboard's browser test
 * drives (tests/integration/dashboard-browser.test.ts, with playwright-core):
 * Debian's `chromium` package, never a browser build downloaded by a test
 * tool. `npm test` runs this before the tests; the test itself only looks.
 *
 * In order: $CORTEX_CHROMIUM; /usr/bin/chromium; a copy unpacked earlier
 * into .cache/chromium/; as root, `apt-get install chromium`; otherwise
 * `apt-get download` of chromium and chromium-common unpacked with
 * `dpkg -x` into .cache/chromium/ (its shared libraries must then already
 * be on the machine). Where none works it says why and the test skips.
 *
 *   bun scripts/fetch-chromium.ts     # prints the browser's path
 */
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";

const CACHE = join(import.meta.dir, "..", ".cache", "chromium");
const UNPACKED = join(CACHE, "usr", "lib", "chromium", "chromium");
const SYSTEM = "/usr/bin/chromium";

/** The browser to launch, if this machine has one already; installs nothing. */
export function findChromium(): string | undefined {
  const fromEnv = process.env.CORTEX_CHROMIUM;
  if (fromEnv !== undefined && fromEnv !== "") return existsSync(fromEnv) ? fromEnv : undefined;
  return [SYSTEM, UNPACKED].find((path) => existsSync(path));
}

function run(cmd: string[], cwd?: string): { ok: boolean; output: string } {
  const proc = Bun.spawnSync(cmd, {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    // A mirror that never answers must not hold `npm test` up: the browser test then skips.
    timeout: 10 * 60_000,
  });
  return { ok: proc.exitCode === 0, output: `${proc.stdout.toString()}${proc.stderr.toString()}`.trim() };
}

const tail = (text: string) => text.split("\n").slice(-3).join(" | ");

/** The browser's path, installing Debian's package first where it can; throws saying why it cannot. */
export function ensureChromium(): string {
  const found = findChromium();
  if (found !== undefined) return found;
  if (!existsSync("/usr/bin/apt-get"))
    throw new Error("no apt-get on this machine to install Debian's chromium");
  if (process.getuid?.() === 0) {
    const install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"];
    let result = run(install);
    // A machine whose package lists were never fetched knows no chromium yet.
    if (!result.ok && run(["apt-get", "update", "-qq"]).ok) result = run(install);
    if (!result.ok) throw new Error(`apt-get install chromium failed: ${tail(result.output)}`);
  } else {
    const debs = join(CACHE, "debs");
    mkdirSync(debs, { recursive: true });
    const download = run(["apt-get", "download", "chromium", "chromium-common"], debs);
    if (!download.ok) throw new Error(`apt-get download chromium failed: ${tail(download.output)}`);
    for (const deb of readdirSync(debs).filter((file) => file.endsWith(".deb"))) {
      const unpack = run(["dpkg", "-x", join(debs, deb), CACHE]);
      if (!unpack.ok) throw new Error(`dpkg -x ${deb} failed: ${tail(unpack.output)}`);
    }
  }
  const installed = findChromium();
  if (installed === undefined) throw new Error("chromium was installed but its binary is not where expected");
  return installed;
}

if (import.meta.main) console.log(ensureChromium());
