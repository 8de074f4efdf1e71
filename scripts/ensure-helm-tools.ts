/**
 * The two programs the chart's tests need, built once with Go and cached in
 * .cache/bin (Go's module and build caches in .cache/go, so a rebuild after
 * a change to the validator takes seconds):
 *
 * - helm, from the Go module proxy (`go install helm.sh/helm/v4/cmd/helm`);
 * - cortex-helm-validate (deploy/helm/validate), which decodes rendered
 *   objects strictly into the Kubernetes API types; rebuilt when its sources
 *   change.
 *
 * The first build takes minutes on two cores. `npm test` calls this before the
 * tests; where Go or the proxy is missing, the chart tests skip and say why.
 *
 *   bun scripts/ensure-helm-tools.ts
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const HELM_VERSION = "v4.3.2";
const root = join(import.meta.dir, "..");
const bin = join(root, ".cache/bin");
export const HELM_BIN = join(bin, "helm");
export const VALIDATE_BIN = join(bin, "cortex-helm-validate");
const VALIDATE_SRC = join(root, "deploy/helm/validate");
const HELM_STAMP = join(bin, "helm.version");
const VALIDATE_STAMP = join(bin, "cortex-helm-validate.sources");

function goEnv(): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    GOBIN: bin,
    GOMODCACHE: join(root, ".cache/go/mod"),
    GOCACHE: join(root, ".cache/go/build"),
    GOFLAGS: "-mod=readonly",
    GOTOOLCHAIN: "local",
  };
}

/** go from PATH, else where Go's own installer puts it (a non-login shell may not have it on PATH). */
function goBinary(): string {
  const found = Bun.which("go") ?? ["/usr/local/go/bin/go"].find((path) => existsSync(path));
  if (found === undefined) throw new Error("go is not on PATH (nor in /usr/local/go/bin)");
  return found;
}

function go(args: string[], cwd: string): void {
  const proc = Bun.spawnSync([goBinary(), ...args], {
    cwd,
    env: goEnv(),
    stdout: "inherit",
    stderr: "inherit",
  });
  if (proc.exitCode !== 0) throw new Error(`go ${args.join(" ")} failed (exit ${proc.exitCode})`);
}

/** The validator's sources, as one string: a change to any of them rebuilds it. */
function validatorSources(): string {
  return ["main.go", "go.mod", "go.sum"]
    .map((file) => readFileSync(join(VALIDATE_SRC, file), "utf8"))
    .join("\0");
}

export function helmToolsReady(): boolean {
  return (
    existsSync(HELM_BIN) &&
    existsSync(VALIDATE_BIN) &&
    existsSync(VALIDATE_STAMP) &&
    readFileSync(VALIDATE_STAMP, "utf8") === validatorSources()
  );
}

export function ensureHelmTools(): void {
  goBinary();
  mkdirSync(bin, { recursive: true });
  const helmCurrent =
    existsSync(HELM_BIN) && existsSync(HELM_STAMP) && readFileSync(HELM_STAMP, "utf8") === HELM_VERSION;
  if (!helmCurrent) {
    console.log(`ensure-helm-tools: building helm ${HELM_VERSION} (minutes, once)`);
    go(["install", `helm.sh/helm/v4/cmd/helm@${HELM_VERSION}`], root);
    writeFileSync(HELM_STAMP, HELM_VERSION);
  }
  const sources = validatorSources();
  if (
    !existsSync(VALIDATE_BIN) ||
    !existsSync(VALIDATE_STAMP) ||
    readFileSync(VALIDATE_STAMP, "utf8") !== sources
  ) {
    console.log("ensure-helm-tools: building cortex-helm-validate");
    go(["build", "-o", VALIDATE_BIN, "."], VALIDATE_SRC);
    writeFileSync(VALIDATE_STAMP, sources);
  }
}

if (import.meta.main) {
  try {
    ensureHelmTools();
    console.log(`ensure-helm-tools: ${HELM_BIN} and ${VALIDATE_BIN} are ready`);
  } catch (error) {
    console.error(`ensure-helm-tools: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
