/**
 * Programs some tests run for real, from Debian's packages, and the two ways
 * `npm test`'s setup gets them: `aptInstall` as root (the system's package
 * manager), `aptUnpack` without root (`apt-get download` and `dpkg -x` into
 * a folder of the project's). dnsmasq for DNS discovery is installed here;
 * scripts/fetch-redis.ts and scripts/fetch-chromium.ts use the same two.
 * Where a program cannot be had, the tests that need it skip and say why.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";

export interface DebianTool {
  /** The program the tests run. */
  binary: string;
  /** The package that has it. */
  pkg: string;
}

export const DEBIAN_TOOLS: readonly DebianTool[] = [{ binary: "dnsmasq", pkg: "dnsmasq-base" }];

/** Runs an apt or dpkg command; throws with the last lines of its output when it fails. */
function run(cmd: string[], cwd?: string): void {
  const proc = Bun.spawnSync(cmd, {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    // A mirror that never answers must not hold `npm test` up: the tests that need the package skip.
    timeout: 10 * 60_000,
  });
  if (proc.exitCode === 0) return;
  const output = `${proc.stdout.toString()}${proc.stderr.toString()}`.trim();
  throw new Error(`${cmd.join(" ")} failed: ${output.split("\n").slice(-3).join(" | ")}`);
}

/** Whether this process may install system packages (root, with apt-get). */
export function canAptInstall(): boolean {
  return process.getuid?.() === 0 && Bun.which("apt-get") !== null;
}

/** `apt-get install` as root; a machine whose package lists were never fetched gets them first. */
export function aptInstall(packages: readonly string[]): void {
  const install = ["apt-get", "install", "-y", "--no-install-recommends", ...packages];
  try {
    run(install);
  } catch {
    run(["apt-get", "update", "-qq"]);
    run(install);
  }
}

/** Without root: downloads the packages' .debs and unpacks them all into `into`. */
export function aptUnpack(packages: readonly string[], into: string): void {
  // Beside the target, so nothing is left on another file system.
  mkdirSync(dirname(into), { recursive: true });
  const debs = mkdtempSync(join(dirname(into), ".debs-"));
  try {
    run(["apt-get", "download", ...packages], debs);
    mkdirSync(into, { recursive: true });
    for (const deb of readdirSync(debs).filter((name) => name.endsWith(".deb")))
      run(["dpkg", "-x", join(debs, deb), into]);
  } finally {
    rmSync(debs, { recursive: true, force: true });
  }
}

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
  const canInstall = canAptInstall();
  if (canInstall)
    try {
      aptInstall(missing.map((tool) => tool.pkg));
    } catch {
      // Said below, per tool that is still missing.
    }
  return missing
    .filter((tool) => findTool(tool.binary) === undefined)
    .map(
      (tool) =>
        `${tool.binary} (Debian package ${tool.pkg}) is not installed${canInstall ? " and apt-get could not install it" : "; install it as root"}`,
    );
}
