/**
 * `npm run build:native:cuda`: builds libllama and ggml from the llama.cpp
 * source of the release cortex's headers were vendored from (ffi/include),
 * with the CUDA backend compiled for this machine's GPUs only (sm_90 on an
 * H100/H200: machine code, so no PTX JIT on first use, and linked against the
 * local toolkit's cudart instead of needing cudart 13). The set lands in
 * .cortex-native/cuda-built/, which the neuron prefers over the prebuilt
 * package; `npm run build` carries it into dist/native/cuda.
 *
 *   bun scripts/build-native.ts [--src DIR] [--out DIR] [--arch 90] [--cpu] [--bench] [--jobs N]
 *
 * --src    a llama.cpp checkout (default: the one node-llama-cpp bundles, fetched with npm pack)
 * --cpu    no CUDA backend (checks the build steps on a machine without nvcc)
 * --bench  also builds llama-bench, beside the libraries
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { discoverCudaDevices } from "../ffi/cuda.ts";
import { LOCAL_NATIVE_DIR } from "../ffi/native-paths.ts";
import versionJson from "../ffi/include/VERSION.json" with { type: "json" };

const root = join(import.meta.dir, "..");
const { values: args } = parseArgs({
  options: {
    src: { type: "string" },
    out: { type: "string" },
    arch: { type: "string" },
    cpu: { type: "boolean", default: false },
    bench: { type: "boolean", default: false },
    jobs: { type: "string" },
  },
});

function run(cmd: string[], cwd?: string): void {
  console.log(`build-native: ${cmd.join(" ")}`);
  const proc = Bun.spawnSync(cmd, { cwd, stdout: "inherit", stderr: "inherit" });
  if (proc.exitCode !== 0) {
    console.error(`build-native: ${cmd[0]} failed (exit ${proc.exitCode})`);
    process.exit(1);
  }
}

/** The llama.cpp source node-llama-cpp ships as a git bundle, at the version whose headers ffi/include holds. */
function fetchSource(): string {
  const work = mkdtempSync(join(tmpdir(), "cortex-llama-src-"));
  run(["npm", "pack", "--silent", `node-llama-cpp@${versionJson.nodeLlamaCpp}`], work);
  run(["tar", "xzf", `node-llama-cpp-${versionJson.nodeLlamaCpp}.tgz`], work);
  run(
    ["git", "-c", "advice.detachedHead=false", "clone", "-q", "package/llama/gitRelease.bundle", "llama.cpp"],
    work,
  );
  return join(work, "llama.cpp");
}

/** CUDA architectures of the GPUs libcuda sees (`90` for compute capability 9.0), deduplicated. */
function localArchitectures(): string {
  const caps = [...new Set(discoverCudaDevices().map((d) => d.computeCapability.replace(".", "")))];
  if (caps.length === 0) {
    console.error("build-native: no CUDA device found to build for; pass --arch (e.g. --arch 90) or --cpu");
    process.exit(2);
  }
  return caps.join(";");
}

const src = resolve(args.src ?? fetchSource());
if (!existsSync(join(src, "include/llama.h"))) {
  console.error(`build-native: ${src} is not a llama.cpp source tree (no include/llama.h)`);
  process.exit(2);
}
const out = resolve(args.out ?? join(root, LOCAL_NATIVE_DIR, args.cpu ? "cpu-built" : "cuda-built"));
const build = join(out, ".build");
const cuda = args.cpu
  ? ["-DGGML_CUDA=OFF"]
  : ["-DGGML_CUDA=ON", `-DCMAKE_CUDA_ARCHITECTURES=${args.arch ?? localArchitectures()}`];
run([
  "cmake",
  "-S",
  src,
  "-B",
  build,
  "-G",
  "Ninja",
  "-DCMAKE_BUILD_TYPE=Release",
  "-DBUILD_SHARED_LIBS=ON",
  // Backends as loadable modules (libggml-cuda.so, libggml-cpu.so), the layout ggml_backend_load_all_from_path reads.
  "-DGGML_BACKEND_DL=ON",
  "-DGGML_NATIVE=OFF",
  "-DGGML_CPU_ALL_VARIANTS=OFF",
  "-DLLAMA_CURL=OFF",
  "-DLLAMA_OPENSSL=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_BUILD_EXAMPLES=OFF",
  "-DLLAMA_BUILD_SERVER=OFF",
  "-DLLAMA_BUILD_APP=OFF",
  `-DLLAMA_BUILD_TOOLS=${args.bench ? "ON" : "OFF"}`,
  "-DCMAKE_BUILD_RPATH=$ORIGIN",
  ...cuda,
]);
const targets = [
  "llama",
  "ggml",
  "ggml-cpu",
  ...(args.cpu ? [] : ["ggml-cuda"]),
  ...(args.bench ? ["llama-bench"] : []),
];
run(["cmake", "--build", build, "--target", ...targets, "-j", args.jobs ?? String(availableParallelism())]);

// The libraries (and llama-bench) side by side: libllama's RUNPATH is $ORIGIN.
mkdirSync(out, { recursive: true });
const bin = join(build, "bin");
for (const file of readdirSync(bin)) {
  if (file.endsWith(".so") || file === "llama-bench") cpSync(join(bin, file), join(out, file));
}
// The release the neuron checks against the vendored headers (ffi/native-paths.ts checkVersions).
writeFileSync(
  join(out, "_nlcBuildMetadata.json"),
  `${JSON.stringify({ buildOptions: { gpu: args.cpu ? false : "cuda", llamaCpp: { release: versionJson.llamaCppTag } }, builtBy: "cortex scripts/build-native.ts" })}\n`,
);
if (process.env.CORTEX_KEEP_NATIVE_BUILD !== "1") rmSync(build, { recursive: true, force: true });
console.log(
  `build-native: ${out} (${args.cpu ? "CPU" : `CUDA ${cuda[1]?.split("=")[1]}`}, llama.cpp ${versionJson.llamaCppTag})`,
);
