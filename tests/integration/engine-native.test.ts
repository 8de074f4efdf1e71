import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { discoverCudaDevices, formatGpuUuid } from "../../ffi/cuda.ts";
import { cudaLibDirs, locateCudaLibs } from "../../ffi/cuda-libs.ts";
import { NativeError } from "../../ffi/native-error.ts";
import { candidateDirs, checkVersions, locateNativeSet } from "../../ffi/native-paths.ts";
import { compileShim, linkShim, repoShimSources } from "../../ffi/shim.ts";

describe("native set lookup", () => {
  test("finds the CPU set in node_modules with matching versions", () => {
    // cwd = the repository root (node_modules), less a local build: a copy of it without .cortex-native.
    const root = mkdtempSync(join(tmpdir(), "cortex-native-root-"));
    symlinkSync(join(process.cwd(), "node_modules"), join(root, "node_modules"));
    const set = locateNativeSet({ env: {}, execPath: "/nonexistent/bin/cortex", cwd: root });
    expect(set.source).toBe("package");
    expect(set.flavor).toBe("cpu");
    expect(set.libllama).toEndWith("libllama.v0.5.0.so");
    expect(set.backends.some((b) => b.includes("libggml-cpu"))).toBe(true);
    expect(set.packageVersion).toBe("3.22.1");
  });

  test("searches option, env, then the CUDA folders (when libcuda is present) before the CPU ones", () => {
    const dirs = candidateDirs({
      nativeDir: "/opt/a",
      env: { CORTEX_NATIVE_DIR: "/opt/b" },
      execPath: "/usr/local/bin/cortex",
      cwd: "/srv",
      cudaAvailable: true,
    }).map((c) => c.dir);
    expect(dirs).toEqual([
      "/opt/a",
      "/opt/b",
      "/usr/local/bin/native/cuda",
      "/srv/.cortex-native/cuda-built",
      "/srv/.cortex-native/cuda",
      "/srv/node_modules/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda",
      "/usr/local/bin/native",
      "/srv/.cortex-native/cpu-built",
      "/srv/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64",
    ]);
  });

  test("a CPU set `npm run build:native` made is preferred to the package, with the same version check", () => {
    const root = mkdtempSync(join(tmpdir(), "cortex-native-root-"));
    const built = join(root, ".cortex-native", "cpu-built");
    mkdirSync(built, { recursive: true });
    for (const file of ["libllama.so", "libggml.so", "libggml-base.so", "libggml-cpu.so"])
      writeFileSync(join(built, file), "");
    const metadata = (release: string) =>
      writeFileSync(
        join(built, "_nlcBuildMetadata.json"),
        JSON.stringify({ buildOptions: { llamaCpp: { release } } }),
      );
    metadata("v0.5.0");
    const set = locateNativeSet({ env: {}, execPath: "/nonexistent/bin/cortex", cwd: root });
    expect(set.source).toBe("local");
    expect(set.dir).toBe(built);
    metadata("v0.4.9");
    expect(() => locateNativeSet({ env: {}, execPath: "/nonexistent/bin/cortex", cwd: root })).toThrow(
      "v0.4.9",
    );
  });

  test("run from source (the executable is Bun), nothing is looked for beside Bun", () => {
    const dirs = candidateDirs({
      env: {},
      execPath: "/srv/node_modules/bun/bin/bun.exe",
      cwd: "/srv",
      cudaAvailable: true,
    }).map((c) => c.dir);
    expect(dirs.some((d) => d.includes("node_modules/bun/bin"))).toBe(false);
    expect(dirs[0]).toBe("/srv/.cortex-native/cuda-built");
  });

  test("an empty CORTEX_NATIVE_DIR is one clear error naming what and where", () => {
    const empty = mkdtempSync(join(tmpdir(), "cortex-native-"));
    try {
      locateNativeSet({ env: { CORTEX_NATIVE_DIR: empty } });
      throw new Error("expected a throw");
    } catch (e) {
      expect(e).toBeInstanceOf(NativeError);
      expect((e as Error).message).toContain(empty);
      expect((e as Error).message).toContain("libllama.v0.5.0.so");
      expect((e as Error).message).toContain("CORTEX_NATIVE_DIR");
    }
  });

  test("nothing anywhere lists every place searched", () => {
    const empty = mkdtempSync(join(tmpdir(), "cortex-native-"));
    expect(() => locateNativeSet({ env: {}, cwd: empty, execPath: join(empty, "cortex") })).toThrow(
      /looked for libllama\.cuda\.v0\.5\.0\.so or libllama\.v0\.5\.0\.so.*native.*node_modules/,
    );
  });

  test("binaries of another llama.cpp release are refused", () => {
    expect(() => checkVersions({ dir: "/x", packageVersion: "3.22.1", llamaCppTag: "b9999" })).toThrow(
      /b9999/,
    );
  });
});

describe("CUDA discovery", () => {
  test("without libcuda there are no devices, and that is not an error", () => {
    // This machine has no GPU; on one that has, the list must name real devices.
    const devices = discoverCudaDevices();
    for (const d of devices) expect(d.uuid).toMatch(/^GPU-[0-9a-f]{8}-/);
    expect(Array.isArray(devices)).toBe(true);
  });

  test("UUIDs print like nvidia-smi", () => {
    const bytes = Uint8Array.from({ length: 16 }, (_, i) => i * 17);
    expect(formatGpuUuid(bytes)).toBe("GPU-00112233-4455-6677-8899-aabbccddeeff");
  });
});

/** A folder laid out like a native set: empty files under the given names, plus metadata. */
function fixtureSet(dir: string, files: string[], meta: { release?: string; version?: string } = {}): string {
  mkdirSync(dir, { recursive: true });
  for (const f of files) writeFileSync(join(dir, f), "");
  if (meta.release)
    writeFileSync(
      join(dir, "_nlcBuildMetadata.json"),
      JSON.stringify({ buildOptions: { llamaCpp: { release: meta.release } } }),
    );
  if (meta.version) writeFileSync(join(dir, "package.json"), JSON.stringify({ version: meta.version }));
  return dir;
}

const CUDA_PACKAGE_FILES = [
  "libllama.cuda.v0.5.0.so",
  "libggml.cuda.v0.5.0.so",
  "libggml-base.so",
  "libggml-cuda.so",
  "libggml-cpu-x64.so",
];

describe("CUDA native set", () => {
  test("the CUDA package's set is found under its real names and is the CUDA flavour", () => {
    const root = mkdtempSync(join(tmpdir(), "cortex-cuda-set-"));
    const dir = fixtureSet(join(root, "set"), CUDA_PACKAGE_FILES, { release: "v0.5.0", version: "3.22.1" });
    const set = locateNativeSet({ env: { CORTEX_NATIVE_DIR: dir } });
    expect(set.flavor).toBe("cuda");
    expect(set.libllama).toBe(join(dir, "libllama.cuda.v0.5.0.so"));
    expect(set.libggml).toBe(join(dir, "libggml.cuda.v0.5.0.so"));
    expect(set.backends).toContain(join(dir, "libggml-cuda.so"));
  });

  test("with libcuda present, a checkout's CUDA set wins over the CPU package, a source build over both", () => {
    const cwd = mkdtempSync(join(tmpdir(), "cortex-cuda-cwd-"));
    fixtureSet(join(cwd, ".cortex-native/cuda"), CUDA_PACKAGE_FILES, {
      release: "v0.5.0",
      version: "3.22.1",
    });
    const options = { env: {}, cwd, execPath: join(cwd, "bin/cortex"), cudaAvailable: true };
    expect(locateNativeSet(options).libllama).toBe(join(cwd, ".cortex-native/cuda/libllama.cuda.v0.5.0.so"));
    // Without libcuda the CUDA folders are not even looked at (no CPU set here, so nothing is found).
    expect(() => locateNativeSet({ ...options, cudaAvailable: false })).toThrow(/native libraries not found/);
    fixtureSet(
      join(cwd, ".cortex-native/cuda-built"),
      ["libllama.so", "libggml.so", "libggml-base.so", "libggml-cuda.so", "libggml-cpu.so"],
      { release: "v0.5.0" },
    );
    const built = locateNativeSet(options);
    expect(built.libllama).toBe(join(cwd, ".cortex-native/cuda-built/libllama.so"));
    expect(built.flavor).toBe("cuda");
  });

  test("a CUDA set of another llama.cpp release or node-llama-cpp version is refused", () => {
    const root = mkdtempSync(join(tmpdir(), "cortex-cuda-set-"));
    const old = fixtureSet(join(root, "old"), CUDA_PACKAGE_FILES, { release: "b9999", version: "3.22.1" });
    expect(() => locateNativeSet({ env: { CORTEX_NATIVE_DIR: old } })).toThrow(/llama\.cpp b9999/);
    const other = fixtureSet(join(root, "other"), CUDA_PACKAGE_FILES, {
      release: "v0.5.0",
      version: "3.9.0",
    });
    expect(() => locateNativeSet({ env: { CORTEX_NATIVE_DIR: other } })).toThrow(/node-llama-cpp 3\.9\.0/);
  });

  test("libcudart and libcublas: CORTEX_CUDA_LIB_DIR, the toolkit, LD_LIBRARY_PATH, then Python wheels", () => {
    const root = mkdtempSync(join(tmpdir(), "cortex-cudart-"));
    const venv = join(root, "venv");
    const wheel = fixtureSet(join(venv, "lib/python3.12/site-packages/nvidia/cuda_runtime/lib"), [
      "libcudart.so.13",
    ]);
    fixtureSet(join(venv, "lib/python3.12/site-packages/nvidia/cublas/lib"), [
      "libcublas.so.13",
      "libcublasLt.so.13",
    ]);
    const toolkit = fixtureSet(join(root, "cuda-13.0/lib64"), ["libcudart.so.13"]);
    const ldPath = fixtureSet(join(root, "ld"), ["libcudart.so.13"]);
    const explicit = fixtureSet(join(root, "explicit"), ["libcudart.so.13"]);
    const env = { HOME: root, VIRTUAL_ENV: venv, LD_LIBRARY_PATH: ldPath };
    const dirs = cudaLibDirs("cuda_runtime", {
      ...env,
      CORTEX_CUDA_LIB_DIR: explicit,
      CUDA_HOME: join(root, "cuda-13.0"),
    });
    expect(dirs.indexOf(explicit)).toBe(0);
    expect(dirs.indexOf(toolkit)).toBeLessThan(dirs.indexOf(ldPath));
    expect(dirs.indexOf(ldPath)).toBeLessThan(dirs.indexOf(wheel));

    const fromWheels = locateCudaLibs({ HOME: root, VIRTUAL_ENV: venv });
    expect(fromWheels.missing).toEqual([]);
    expect(fromWheels.found.get("libcudart.so.13")).toBe(join(wheel, "libcudart.so.13"));
    expect(fromWheels.found.get("libcublas.so.13")).toStartWith(
      join(venv, "lib/python3.12/site-packages/nvidia/cublas"),
    );
    expect(locateCudaLibs({ ...env, CUDA_HOME: join(root, "cuda-13.0") }).found.get("libcudart.so.13")).toBe(
      join(toolkit, "libcudart.so.13"),
    );
    expect(locateCudaLibs({ ...env, CORTEX_CUDA_LIB_DIR: explicit }).found.get("libcudart.so.13")).toBe(
      join(explicit, "libcudart.so.13"),
    );
    const none = locateCudaLibs({ HOME: root });
    expect(none.missing).toContain("libcudart.so.13");
    expect(none.looked.get("libcudart.so.13")).toContain("/usr/local/cuda/lib64");
  });
});

describe("npm run setup:cuda", () => {
  test("puts the CUDA package's set where the neuron looks, and names the runtime libraries still missing", () => {
    const work = mkdtempSync(join(tmpdir(), "cortex-setup-cuda-"));
    // A package laid out like @node-llama-cpp/linux-x64-cuda, so no network is needed.
    fixtureSet(join(work, "package/bins/linux-x64-cuda"), CUDA_PACKAGE_FILES, { release: "v0.5.0" });
    writeFileSync(join(work, "package/package.json"), JSON.stringify({ version: "3.22.1" }));
    const tgz = join(work, "cuda.tgz");
    expect(Bun.spawnSync(["tar", "czf", tgz, "-C", work, "package"]).exitCode).toBe(0);
    const cwd = join(work, "checkout");
    const run = Bun.spawnSync(
      [
        process.execPath,
        join(import.meta.dir, "../../scripts/setup-cuda.ts"),
        "--from",
        tgz,
        "--no-pip",
        "--dest",
        join(cwd, ".cortex-native/cuda"),
      ],
      { env: { PATH: process.env.PATH, HOME: work }, stdout: "pipe", stderr: "pipe" },
    );
    const output = run.stdout.toString() + run.stderr.toString();
    const set = locateNativeSet({ env: {}, cwd, execPath: join(cwd, "bin/cortex"), cudaAvailable: true });
    expect(set.flavor).toBe("cuda");
    expect(set.libllama).toBe(join(cwd, ".cortex-native/cuda/libllama.cuda.v0.5.0.so"));
    expect(set.packageVersion).toBe("3.22.1");
    // This machine has no CUDA 13 runtime: the set is in place, the command says what is still missing.
    if (!output.includes("libcudart.so.13: /")) {
      expect(run.exitCode).toBe(1);
      expect(output).toContain("still missing: libcudart.so.13");
      expect(output).toContain("nvidia-cuda-runtime==13.*");
    }
  });
});

describe("the native shim's compile", () => {
  test("a source that does not compile is one clear error naming it, after the retries", () => {
    // The retries are for a transient TinyCC failure seen under load; a real error must still surface.
    const set = locateNativeSet({ env: {}, cwd: process.cwd() });
    const dir = mkdtempSync(join(tmpdir(), "cortex-broken-shim-"));
    const source = join(dir, "shim.c");
    writeFileSync(source, "int shim_sizeof_context_params(void) { return ; \n");
    const repo = repoShimSources();
    let error: unknown;
    try {
      compileShim(set.libllama, { ...repo, source });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(NativeError);
    expect((error as NativeError).code).toBe("broken");
    expect((error as Error).message).toContain(`compiling the native shim ${source} failed`);
  });
});

describe("the native shim's greedy scan (shim_argmax, behind shim_sample_greedy)", () => {
  // llama.cpp's greedy sampler (llama_sampler_greedy_apply): the first value strictly above every earlier one.
  const llamaGreedy = (values: Float32Array): number => {
    let selected = 0;
    for (let i = 1; i < values.length; i++) if (values[i]! > values[selected]!) selected = i;
    return selected;
  };
  const shim = linkShim(compileShim(locateNativeSet({ env: {}, cwd: process.cwd() }).libllama));
  const argmax = (values: number[] | Float32Array) => {
    const array = values instanceof Float32Array ? values : new Float32Array(values);
    return shim.shim_argmax(array, array.length);
  };

  test("ties go to the earliest token, within a lane, across lanes and in the tail", () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(argmax([0, 5, 0, 0, 5, 0, 0, 0])).toBe(1);
    expect(argmax([0, 0, 0, 5, 0, 0, 5, 0])).toBe(3);
    expect(argmax([5, 0, 0, 0, 0, 0, 0, 0, 5])).toBe(0);
    expect(argmax([0, 0, 0, 0, 0, 0, 0, 0, 7, 7])).toBe(8);
    expect(argmax([2, 2, 2, 2, 2])).toBe(0);
  });

  test("NaN is never chosen over an earlier value, and a first NaN wins as llama.cpp's scan lets it", () => {
    expect(argmax([1, Number.NaN, 0.5, 0.7, 2])).toBe(4);
    expect(argmax([Number.NaN, 9, 9, 9, 9])).toBe(0);
    expect(argmax([-Infinity, -Infinity, -Infinity])).toBe(0);
    expect(argmax([-Infinity, -1e30, -Infinity, -Infinity, -Infinity])).toBe(1);
  });

  test("agrees with llama.cpp's scan on every length up to 40 with many ties, and on a 262k vocabulary", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let n = 1; n <= 40; n++)
      for (let trial = 0; trial < 50; trial++) {
        const values = Float32Array.from({ length: n }, () => Math.floor(random() * 4));
        expect(argmax(values)).toBe(llamaGreedy(values));
      }
    const logits = Float32Array.from({ length: 262_144 }, () => random() * 30 - 15);
    expect(argmax(logits)).toBe(llamaGreedy(logits));
    logits[262_143] = 100;
    expect(argmax(logits)).toBe(262_143);
  });

  test("no values is no choice", () => {
    expect(shim.shim_argmax(new Float32Array(1), 0)).toBe(-1);
  });
});
