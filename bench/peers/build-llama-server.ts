/**
 * Builds llama.cpp's `llama-server` (and `llama-bench`) from the very source
 * the installed prebuilt libllama was made from, once, into
 * `.cache/llama-server/<version>/` (gitignored), and reuses it afterwards.
 *
 * The source ships as `llama/gitRelease.bundle` inside the npm package
 * `node-llama-cpp` of the same version as `@node-llama-cpp/linux-x64`; the
 * umbrella package is fetched with `npm pack` into a temporary folder and is
 * never added to package.json or the lockfile.
 *
 *   bun bench/peers/build-llama-server.ts            # prints the binary's path
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { amxBuild, compilerFlagOptions } from "../../scripts/amx-check.ts";

const ROOT = join(import.meta.dir, "..", "..");

function prebuiltVersion(): string {
  const manifest = join(ROOT, "node_modules", "@node-llama-cpp", "linux-x64", "package.json");
  return z.object({ version: z.string() }).parse(JSON.parse(readFileSync(manifest, "utf8"))).version;
}

async function run(cmd: string[], cwd: string): Promise<void> {
  const child = Bun.spawn(cmd, { cwd, stdout: "inherit", stderr: "inherit" });
  if ((await child.exited) !== 0) throw new Error(`${cmd.join(" ")} (in ${cwd}) failed`);
}

export interface LlamaServerBuild {
  server: string;
  bench: string;
  version: string;
}

/**
 * The llama.cpp source of the installed version, unpacked (not built) into
 * `.cache/llama-server/<version>/src`: the build's input, and the real chat
 * templates (models/templates/) the template-fidelity test reads.
 */
export async function ensureLlamaSource(): Promise<string> {
  const version = prebuiltVersion();
  const dir = join(ROOT, ".cache", "llama-server", version);
  const src = join(dir, "src");
  if (!existsSync(join(src, "CMakeLists.txt"))) {
    const tmp = mkdtempSync(join(tmpdir(), "cortex-llama-src-"));
    try {
      await run(["npm", "pack", "--silent", `node-llama-cpp@${version}`], tmp);
      await run(["tar", "xzf", `node-llama-cpp-${version}.tgz`, "package/llama/gitRelease.bundle"], tmp);
      mkdirSync(dir, { recursive: true });
      const cloned = join(tmp, "src");
      await run(["git", "clone", "--quiet", join(tmp, "package", "llama", "gitRelease.bundle"), cloned], tmp);
      rmSync(src, { recursive: true, force: true });
      renameSync(cloned, src);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return src;
}

/**
 * The options the peer is built with beyond the source's defaults:
 * GGML_NATIVE, and what AMX needs where this machine's compiler builds it
 * broken (scripts/amx-check.ts): the neuron's prebuilt variant has working
 * AMX, so a peer without it would be measured on slower kernels.
 */
function buildOptions(): string[] {
  const amx = amxBuild();
  if (amx.note) console.log(`build-llama-server: AMX: ${amx.note}`);
  const flags = [...amx.cflags, ...(amx.amx ? [] : ["-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16"])];
  return ["-DGGML_NATIVE=ON", ...compilerFlagOptions(flags)];
}

/** Paths of the cached build for the installed version; builds it when missing or made with other options. */
export async function ensureLlamaServer(jobs = 2): Promise<LlamaServerBuild> {
  const version = prebuiltVersion();
  const dir = join(ROOT, ".cache", "llama-server", version);
  const server = join(dir, "build", "bin", "llama-server");
  const bench = join(dir, "build", "bin", "llama-bench");
  // Which options the cached build was made with: a build from before a change to them is made again.
  const stamp = join(dir, "build", "cortex-options.json");
  const options = buildOptions();
  const stamped = existsSync(stamp) ? readFileSync(stamp, "utf8") : undefined;
  if (existsSync(server) && existsSync(bench) && stamped === JSON.stringify(options))
    return { server, bench, version };

  const src = await ensureLlamaSource();
  const build = join(dir, "build");
  await run(
    [
      "cmake",
      "-S",
      src,
      "-B",
      build,
      "-DCMAKE_BUILD_TYPE=Release",
      "-DLLAMA_CURL=OFF",
      "-DLLAMA_BUILD_TESTS=OFF",
      "-DLLAMA_BUILD_EXAMPLES=OFF",
      "-DLLAMA_BUILD_SERVER=ON",
      ...options,
    ],
    dir,
  );
  await run(
    [
      "cmake",
      "--build",
      build,
      "--config",
      "Release",
      "-j",
      String(jobs),
      "--target",
      "llama-server",
      "llama-bench",
    ],
    dir,
  );
  if (!existsSync(server) || !existsSync(bench))
    throw new Error(`build finished without ${server} or ${bench}`);
  writeFileSync(stamp, JSON.stringify(options));
  return { server, bench, version };
}

if (import.meta.main) {
  const built = await ensureLlamaServer();
  console.log(built.server);
}
