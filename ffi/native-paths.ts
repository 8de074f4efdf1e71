/**
 * Finds the prebuilt native set (libllama, libggml, libggml-base and the ggml
 * backends) that must sit together in one real folder: libllama's RUNPATH is
 * `$ORIGIN` and ggml `dlopen`s its backends from a directory at run time.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { z } from "zod";
import { NativeError } from "./native-error.ts";
import versionJson from "./include/VERSION.json" with { type: "json" };

const ExpectedVersion = z.object({ nodeLlamaCpp: z.string(), llamaCppTag: z.string() });
const EXPECTED = ExpectedVersion.parse(versionJson);

/**
 * The file names a set's libllama and libggml go by, in the order tried:
 * node-llama-cpp's CUDA package (`libllama.cuda.v0.5.0.so`), its CPU package
 * (`libllama.v0.5.0.so`), and a plain llama.cpp CMake build (`libllama.so`,
 * `npm run build:native:cuda`). libggml-base.so has one name in all three.
 */
export const LIB_NAMES = [
  { llama: `libllama.cuda.${EXPECTED.llamaCppTag}.so`, ggml: `libggml.cuda.${EXPECTED.llamaCppTag}.so` },
  { llama: `libllama.${EXPECTED.llamaCppTag}.so`, ggml: `libggml.${EXPECTED.llamaCppTag}.so` },
  { llama: "libllama.so", ggml: "libggml.so" },
] as const;
export const GGML_BASE_LIB = "libggml-base.so";
const EXPECTED_FILES = `${LIB_NAMES.map((n) => n.llama).join(" or ")}, its libggml and ${GGML_BASE_LIB}`;

export const CPU_PACKAGE = "@node-llama-cpp/linux-x64";
export const CUDA_PACKAGE = "@node-llama-cpp/linux-x64-cuda";
/** Where `npm run setup:cuda`, `npm run build:native:cuda` and `npm run build:native` put a set in a source checkout. */
export const LOCAL_NATIVE_DIR = ".cortex-native";

export type NativeFlavor = "cpu" | "cuda";

export interface NativeSet {
  /** Real directory holding every library of the set. */
  dir: string;
  flavor: NativeFlavor;
  /** Where the directory came from, for the start-up log line. */
  source: "env" | "beside-executable" | "option" | "local" | "package";
  libllama: string;
  libggml: string;
  libggmlBase: string;
  /** ggml backend libraries found in `dir` (`libggml-cpu-*.so`, `libggml-cuda.so`). */
  backends: string[];
  /** node-llama-cpp package version, when known. */
  packageVersion: string | undefined;
  /** llama.cpp release tag of the binaries, when known. */
  llamaCppTag: string | undefined;
}

export interface LocateOptions {
  /** Explicit directory (e.g. from config); wins over everything else. */
  nativeDir?: string;
  env?: Record<string, string | undefined>;
  /** Defaults to `process.execPath`; a `native/` folder beside it is searched. */
  execPath?: string;
  /** Directory whose node_modules is searched; defaults to `process.cwd()`. */
  cwd?: string;
  /** Whether libcuda is usable on this machine (see ffi/cuda.ts). */
  cudaAvailable?: boolean;
}

const BuildMetadata = z.object({
  buildOptions: z.object({ llamaCpp: z.object({ release: z.string() }).partial() }).partial(),
});
const PackageJson = z.object({ version: z.string() });

interface Candidate {
  dir: string;
  source: NativeSet["source"];
  flavor: NativeFlavor;
}

function packageBinsDir(cwd: string, pkg: string): string {
  return join(cwd, "node_modules", pkg, "bins", pkg === CPU_PACKAGE ? "linux-x64" : "linux-x64-cuda");
}

/** Ordered candidate directories; pure so the search order is testable. */
export function candidateDirs(options: LocateOptions): Candidate[] {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const execPath = options.execPath ?? process.execPath;
  const out: Candidate[] = [];
  if (options.nativeDir) out.push({ dir: resolve(options.nativeDir), source: "option", flavor: "cpu" });
  const fromEnv = env.CORTEX_NATIVE_DIR;
  if (fromEnv) out.push({ dir: resolve(fromEnv), source: "env", flavor: "cpu" });
  // Run from source, the executable is Bun itself: nothing of ours sits beside it.
  const besideExecutable = !/^bun(\.exe)?$/.test(basename(execPath));
  if (options.cudaAvailable) {
    if (besideExecutable)
      out.push({
        dir: join(dirname(execPath), "native", "cuda"),
        source: "beside-executable",
        flavor: "cuda",
      });
    // A set built from source for this machine's GPUs wins over the prebuilt package (no JIT, no cudart 13).
    out.push({ dir: join(cwd, LOCAL_NATIVE_DIR, "cuda-built"), source: "local", flavor: "cuda" });
    out.push({ dir: join(cwd, LOCAL_NATIVE_DIR, "cuda"), source: "local", flavor: "cuda" });
    out.push({ dir: packageBinsDir(cwd, CUDA_PACKAGE), source: "package", flavor: "cuda" });
  }
  if (besideExecutable)
    out.push({ dir: join(dirname(execPath), "native"), source: "beside-executable", flavor: "cpu" });
  // A CPU set built for this machine's instruction sets (`npm run build:native`) wins over the prebuilt package.
  out.push({ dir: join(cwd, LOCAL_NATIVE_DIR, "cpu-built"), source: "local", flavor: "cpu" });
  out.push({ dir: packageBinsDir(cwd, CPU_PACKAGE), source: "package", flavor: "cpu" });
  return out;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

function inspect(candidate: Candidate): NativeSet | undefined {
  const { dir } = candidate;
  const libggmlBase = join(dir, GGML_BASE_LIB);
  const names = LIB_NAMES.find((n) => existsSync(join(dir, n.llama)) && existsSync(join(dir, n.ggml)));
  if (!names || !existsSync(libggmlBase)) return undefined;
  const libllama = join(dir, names.llama);
  const libggml = join(dir, names.ggml);
  const backends = readdirSync(dir)
    .filter((f) => /^libggml-(cpu|cuda|vulkan)[-.\w]*\.so$/.test(f))
    .map((f) => join(dir, f));
  // The CUDA package ships a CUDA backend; a folder without one is CPU-only whatever its name.
  const flavor: NativeFlavor = backends.some((b) => b.includes("libggml-cuda")) ? "cuda" : "cpu";
  const meta = BuildMetadata.safeParse(readJson(join(dir, "_nlcBuildMetadata.json")));
  // In node_modules the package.json is two levels up; the build copies it beside the libraries.
  const pkg = PackageJson.safeParse(
    readJson(join(dir, "package.json")) ??
      (candidate.source === "package" ? readJson(join(dir, "..", "..", "package.json")) : undefined),
  );
  return {
    dir,
    flavor,
    source: candidate.source,
    libllama,
    libggml,
    libggmlBase,
    backends,
    packageVersion: pkg.success ? pkg.data.version : undefined,
    llamaCppTag: meta.success ? meta.data.buildOptions?.llamaCpp?.release : undefined,
  };
}

/**
 * Version mismatches between the binaries and the vendored headers would
 * corrupt every struct passed by value, so they are fatal, not warnings.
 */
export function checkVersions(set: Pick<NativeSet, "dir" | "packageVersion" | "llamaCppTag">): void {
  if (set.llamaCppTag !== undefined && set.llamaCppTag !== EXPECTED.llamaCppTag)
    throw new NativeError(
      "broken",
      `native libraries in ${set.dir} are llama.cpp ${set.llamaCppTag}, but ffi/include was vendored from ${EXPECTED.llamaCppTag}`,
    );
  if (set.packageVersion !== undefined && set.packageVersion !== EXPECTED.nodeLlamaCpp)
    throw new NativeError(
      "broken",
      `native libraries in ${set.dir} come from node-llama-cpp ${set.packageVersion}, expected ${EXPECTED.nodeLlamaCpp}`,
    );
}

/**
 * Locates the native set or throws one NativeError naming every place
 * searched. With libcuda present the CUDA folders come first; when none holds
 * a set, `cudaLooked` lists them (the neuron's GPU check names them).
 */
export function locateNativeSet(options: LocateOptions = {}): NativeSet & { cudaLooked: string[] } {
  const candidates = candidateDirs(options);
  const explicit = candidates.filter((c) => c.source === "option" || c.source === "env");
  // An explicitly named directory that lacks the set is a configuration error, not a reason to fall back.
  for (const c of explicit) {
    const found = inspect(c);
    if (!found)
      throw new NativeError(
        "broken",
        `native libraries not found in ${c.dir} (from ${c.source === "env" ? "CORTEX_NATIVE_DIR" : "nativeDir"}): expected ${EXPECTED_FILES}`,
      );
    checkVersions(found);
    return { ...found, cudaLooked: [] };
  }
  const cudaLooked: string[] = [];
  for (const c of candidates) {
    const found = inspect(c);
    if (found) {
      checkVersions(found);
      return { ...found, cudaLooked: found.flavor === "cuda" ? [] : cudaLooked };
    }
    if (c.flavor === "cuda") cudaLooked.push(c.dir);
  }
  throw new NativeError(
    "broken",
    `native libraries not found: looked for ${EXPECTED_FILES} in ${candidates
      .map((c) => c.dir)
      .join(", ")}; set CORTEX_NATIVE_DIR or install ${CPU_PACKAGE}`,
  );
}
