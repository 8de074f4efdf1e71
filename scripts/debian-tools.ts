/**
 * Servers some tests run for real (dnsmasq for DNS discovery), from Debian's
 * packages: installed by `npm test`'s setup when missing and the machine
 * allows it (root and apt-get), so a clean machine runs those tests too.
 * Where they cannot be had, the tests that need them skip and say why.
 */
import { existsSync } from "node:fs";

export interface DebianTool {
  /** The program the tests run. */
  binary: string;
  /** The package that has it. */
  pkg: string;
}

export const DEBIAN_TOOLS: readonly DebianTool[] = [{ binary: "dnsmasq", pkg: "dnsmasq-base" }];

/** Where `binary` is, looking in the sbin folders too (dnsmasq lives in /usr/sbin). */
export function findTool(binary: string): string | undefined {
  const found = Bun.which(binary);
  if (found) return found;
  for (const dir of ["/usr/sbin", "/sbin", "/usr/local/sbin"])
    if (existsSync(`${dir}/${binary}`)) return `${dir}/${binary}`;
  return undefined;
}

/** Installs the missing tools; returns a line per tool that is still missing, saying why. */
export function ensureDebianTools(tools: readonly DebianTool[] = DEBIAN_TOOLS): string[] {
  const missing = tools.filter((tool) => findTool(tool.binary) === undefined);
  if (missing.length === 0) return [];
  const packages = missing.map((tool) => tool.pkg);
  const canInstall = process.getuid?.() === 0 && Bun.which("apt-get") !== null;
  if (canInstall) {
    const install = () =>
      Bun.spawnSync(["apt-get", "install", "-y", "--no-install-recommends", ...packages], {
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
        stdout: "ignore",
        stderr: "pipe",
      });
    // A fresh machine may have no package lists yet.
    if (install().exitCode !== 0) {
      Bun.spawnSync(["apt-get", "update"], { stdout: "ignore", stderr: "ignore" });
      install();
    }
  }
  return missing
    .filter((tool) => findTool(tool.binary) === undefined)
    .map(
      (tool) =>
        `${tool.binary} (Debian package ${tool.pkg}) is not installed${canInstall ? " and apt-get could not install it" : "; install it as root"}`,
    );
}
