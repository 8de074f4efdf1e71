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
import { existsSync } from "node:fs";
import { join } from "node:path";
import { aptInstall, aptUnpack, canAptInstall } from "./debian-tools.ts";

const CACHE = join(import.meta.dir, "..", ".cache", "chromium");
const UNPACKED = join(CACHE, "usr", "lib", "chromium", "chromium");
const SYSTEM = "/usr/bin/chromium";

/** The browser to launch, if this machine has one already; installs nothing. */
export function findChromium(): string | undefined {
  const fromEnv = process.env.CORTEX_CHROMIUM;
  if (fromEnv !== undefined && fromEnv !== "") return existsSync(fromEnv) ? fromEnv : undefined;
  return [SYSTEM, UNPACKED].find((path) => existsSync(path));
}

/** The browser's path, installing Debian's package first where it can; throws saying why it cannot. */
export function ensureChromium(): string {
  const found = findChromium();
  if (found !== undefined) return found;
  if (!existsSync("/usr/bin/apt-get"))
    throw new Error("no apt-get on this machine to install Debian's chromium");
  // Without root, its shared libraries must already be on the machine.
  if (canAptInstall()) aptInstall(["chromium"]);
  else aptUnpack(["chromium", "chromium-common"], CACHE);
  const installed = findChromium();
  if (installed === undefined) throw new Error("chromium was installed but its binary is not where expected");
  return installed;
}

if (import.meta.main) console.log(ensureChromium());
