/**
 * `npm run build`: one executable, dist/cortex, holding both modes.
 *
 * Worker entry points (`src/**\/*-worker.ts`) are compiled in as extra
 * entry points so `new Worker(...)` finds them inside the binary. The native
 * set (libllama, ggml and its backends, our C shim source and the matching
 * headers) cannot run from Bun's virtual file system (libllama's RUNPATH is
 * $ORIGIN and ggml dlopens its backends from a real folder), so it is copied
 * beside the binary into dist/native/; the binary looks there first.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { Glob } from "bun";
import { CUDA_PACKAGE, GGML_BASE_LIB, LOCAL_NATIVE_DIR } from "../ffi/native-paths.ts";

const root = join(import.meta.dir, "..");
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const workers = [...new Glob("src/**/*-worker.ts").scanSync({ cwd: root })].sort();
const entrypoints = ["src/cli/main.ts", ...workers];
const args = ["build", "--compile", "--minify-syntax", ...entrypoints, "--outfile", join(dist, "cortex")];
const build = Bun.spawnSync([process.execPath, ...args], { cwd: root, stdout: "inherit", stderr: "inherit" });
if (build.exitCode !== 0) process.exit(build.exitCode ?? 1);

const native = join(dist, "native");
mkdirSync(native, { recursive: true });
const cpuBins = join(root, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");
if (!existsSync(cpuBins)) {
  console.error(`build: ${relative(root, cpuBins)} is missing; run npm ci first`);
  process.exit(1);
}
const copyLibs = (from: string, to: string) => {
  mkdirSync(to, { recursive: true });
  for (const file of readdirSync(from)) {
    if (file.endsWith(".so") || file.endsWith(".json")) cpSync(join(from, file), join(to, file));
  }
};
copyLibs(cpuBins, native);
// The package's version travels with its libraries so the binary can check it at start.
cpSync(join(cpuBins, "../../package.json"), join(native, "package.json"));
// A CUDA set, when this checkout has one (npm run build:native:cuda, npm run setup:cuda, or the
// package installed by hand), goes to dist/native/cuda: the binary prefers it where libcuda finds a GPU.
const cudaSources = [
  join(root, LOCAL_NATIVE_DIR, "cuda-built"),
  join(root, LOCAL_NATIVE_DIR, "cuda"),
  join(root, "node_modules", CUDA_PACKAGE, "bins/linux-x64-cuda"),
];
const cudaBins = cudaSources.find((dir) => existsSync(join(dir, GGML_BASE_LIB)));
if (cudaBins) {
  copyLibs(cudaBins, join(native, "cuda"));
  // copyLibs took a package.json beside the libraries; in node_modules it sits two levels up.
  if (cudaBins.includes("node_modules"))
    cpSync(join(cudaBins, "../../package.json"), join(native, "cuda", "package.json"));
  console.log(`build: CUDA set from ${relative(root, cudaBins)} -> dist/native/cuda/`);
}
// The C shim is compiled at start by Bun's built-in TinyCC, from these sources.
cpSync(join(root, "ffi/shim.c"), join(native, "shim.c"));
cpSync(join(root, "ffi/include"), join(native, "include"), { recursive: true });
cpSync(join(root, "ffi/shim-include"), join(native, "shim-include"), { recursive: true });
console.log(`build: dist/cortex (+ dist/native/, ${workers.length} worker entry point(s))`);
