/**
 * Builds libllama and ggml from the llama.cpp source of the release cortex's
 * headers were vendored from (ffi/include), for this machine:
 *
 * - `npm run build:native:cuda`: the CUDA backend compiled for this machine's
 *   GPUs only (sm_90 on an H100/H200: machine code, so no PTX JIT on first
 *   use, and linked against the local toolkit's cudart instead of needing
 *   cudart 13), into .cortex-native/cuda-built/; `npm run build` carries it
 *   into dist/native/cuda.
 * - `npm run build:native` (`--cpu`): the CPU backend compiled for every
 *   instruction set this CPU reports (the GGML_NATIVE idea, not the nearest of
 *   the prebuilt package's fixed variants), into .cortex-native/cpu-built/.
 *   ggml refuses GGML_NATIVE with loadable backends, so the sets are named
 *   one by one from /proc/cpuinfo (x86; elsewhere GGML_NATIVE without them).
 *
 * The neuron prefers either folder over the prebuilt package when it is
 * present (ffi/native-paths.ts), with the same version checks. When the CPU
 * build pays is in BENCHMARKS.md ("When `npm run build:native` pays");
 * bench/real-model-bench.ts measures both. Where this machine's compiler
 * builds AMX code broken, it is built with `-fno-dse` or left out
 * (scripts/amx-check.ts).
 *
 *   bun scripts/build-native.ts [--src DIR] [--out DIR] [--arch 90] [--cpu] [--bench] [--jobs N]
 *
 * --src    a llama.cpp checkout (default: the one bench/peers/build-llama-server.ts
 *          unpacked under .cache/, else the one node-llama-cpp bundles, fetched with npm pack)
 * --cpu    no CUDA backend; the CPU backend built for this machine (GGML_NATIVE)
 * --bench  also builds llama-bench, beside the libraries
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { discoverCudaDevices } from "../ffi/cuda.ts";
import { amxBuild, compilerFlagOptions, x86CpuFlags } from "./amx-check.ts";
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

/** The source build-llama-server.ts unpacked for the same release, when it is there (saves the npm pack and clone). */
function cachedSource(): string | undefined {
  const dir = join(root, ".cache", "llama-server", versionJson.nodeLlamaCpp, "src");
  return existsSync(join(dir, "include/llama.h")) ? dir : undefined;
}

/** ggml's x86 instruction-set options and the /proc/cpuinfo flags each needs. */
const X86_OPTIONS: [option: string, flags: string[]][] = [
  ["GGML_SSE42", ["sse4_2"]],
  ["GGML_AVX", ["avx"]],
  ["GGML_AVX_VNNI", ["avx_vnni"]],
  ["GGML_AVX2", ["avx2"]],
  ["GGML_BMI2", ["bmi2"]],
  ["GGML_FMA", ["fma"]],
  ["GGML_F16C", ["f16c"]],
  ["GGML_AVX512", ["avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"]],
  ["GGML_AVX512_VBMI", ["avx512vbmi"]],
  ["GGML_AVX512_VNNI", ["avx512_vnni"]],
  ["GGML_AVX512_BF16", ["avx512_bf16"]],
  ["GGML_AMX_TILE", ["amx_tile"]],
  ["GGML_AMX_INT8", ["amx_int8"]],
  ["GGML_AMX_BF16", ["amx_bf16"]],
];

/** What AMX needs in this build (scripts/amx-check.ts), asked once. */
const amx = args.cpu ? amxBuild() : { amx: false, cflags: [] };
if (amx.note) console.log(`build-native: AMX: ${amx.note}`);

/** CMake options for this CPU's instruction sets (GGML_NATIVE where they cannot be read). */
function cpuOptions(): string[] {
  const flags = x86CpuFlags();
  if (flags === undefined) return ["-DGGML_BACKEND_DL=OFF", "-DGGML_NATIVE=ON"];
  const usable = (option: string, needs: string[]) =>
    needs.every((f) => flags.has(f)) && (amx.amx || !option.startsWith("GGML_AMX_"));
  return [
    "-DGGML_NATIVE=OFF",
    ...X86_OPTIONS.map(([option, needs]) => `-D${option}=${usable(option, needs) ? "ON" : "OFF"}`),
  ];
}

const src = resolve(args.src ?? cachedSource() ?? fetchSource());
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
  // CPU: this machine's instruction sets. CUDA: the CPU part stays portable.
  ...(args.cpu ? [...cpuOptions(), ...compilerFlagOptions(amx.cflags)] : ["-DGGML_NATIVE=OFF"]),
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
// Every name the loader may ask for (libllama.so, and the libggml.so.0 its NEEDED entries name), the links
// as CMake made them (relative, so they hold in the new folder): copies would be two libggml instances,
// one with the backends registered and one without.
for (const file of readdirSync(bin)) {
  if (/\.so(\.\d+)*$/.test(file) || file === "llama-bench")
    cpSync(join(bin, file), join(out, file), { verbatimSymlinks: true });
}
// The release the neuron checks against the vendored headers (ffi/native-paths.ts checkVersions).
writeFileSync(
  join(out, "_nlcBuildMetadata.json"),
  `${JSON.stringify({ buildOptions: { gpu: args.cpu ? false : "cuda", llamaCpp: { release: versionJson.llamaCppTag } }, builtBy: "cortex scripts/build-native.ts" })}\n`,
);
if (process.env.CORTEX_KEEP_NATIVE_BUILD !== "1") rmSync(build, { recursive: true, force: true });
console.log(
  `build-native: ${out} (${
    args.cpu
      ? `CPU: ${cpuOptions()
          .filter((o) => o.endsWith("=ON"))
          .join(" ")}`
      : `CUDA ${cuda[1]?.split("=")[1]}`
  }, llama.cpp ${versionJson.llamaCppTag})`,
);
