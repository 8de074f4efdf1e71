import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { discoverCudaDevices, formatGpuUuid } from "../../ffi/cuda.ts";
import { NativeError } from "../../ffi/native-error.ts";
import { candidateDirs, checkVersions, locateNativeSet } from "../../ffi/native-paths.ts";

describe("native set lookup", () => {
  test("finds the CPU set in node_modules with matching versions", () => {
    const set = locateNativeSet({ env: {}, execPath: "/nonexistent/bin/cortex" });
    expect(set.source).toBe("package");
    expect(set.flavor).toBe("cpu");
    expect(set.libllama).toEndWith("libllama.v0.5.0.so");
    expect(set.backends.some((b) => b.includes("libggml-cpu"))).toBe(true);
    expect(set.packageVersion).toBe("3.22.1");
  });

  test("searches option, env, beside the executable, then packages (CUDA first when present)", () => {
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
      "/usr/local/bin/native",
      "/srv/node_modules/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda",
      "/srv/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64",
    ]);
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
      /looked for libllama\.v0\.5\.0\.so.*native.*node_modules/,
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
