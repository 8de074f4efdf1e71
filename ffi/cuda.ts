/**
 * CUDA driver API (libcuda) discovery: device names, UUIDs, compute
 * capability and memory. No libcuda or no device means CPU mode, which is
 * not an error: discovery returns [].
 *
 * CUDA_VISIBLE_DEVICES is applied by the driver itself at cuInit, so ordinals
 * here are the remapped ones, the same ordinals the ggml CUDA backend uses.
 */
import { dlopen, type FFIFunction } from "bun:ffi";
import { consola } from "consola";

const cudaDefs = {
  cuInit: { args: ["u32"], returns: "i32" },
  cuDriverGetVersion: { args: ["ptr"], returns: "i32" },
  cuDeviceGetCount: { args: ["ptr"], returns: "i32" },
  cuDeviceGet: { args: ["ptr", "i32"], returns: "i32" },
  cuDeviceGetName: { args: ["ptr", "i32", "i32"], returns: "i32" },
  cuDeviceGetUuid: { args: ["ptr", "i32"], returns: "i32" },
  cuDeviceGetAttribute: { args: ["ptr", "i32", "i32"], returns: "i32" },
  cuDeviceTotalMem_v2: { args: ["ptr", "i32"], returns: "i32" },
  cuDevicePrimaryCtxRetain: { args: ["ptr", "i32"], returns: "i32" },
  cuCtxSetCurrent: { args: ["u64"], returns: "i32" },
  cuMemGetInfo_v2: { args: ["ptr", "ptr"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;

type CudaLib = ReturnType<typeof dlopen<typeof cudaDefs>>;

const CUDA_SUCCESS = 0;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;

export interface CudaDevice {
  /** Ordinal after CUDA_VISIBLE_DEVICES remapping. */
  index: number;
  name: string;
  /** `GPU-xxxxxxxx-xxxx-…`, as nvidia-smi prints it. */
  uuid: string;
  computeCapability: string;
  memoryTotal: number;
}

const LIBCUDA_NAMES = ["libcuda.so.1", "libcuda.so"];
let cached: CudaLib | null | undefined;

function openLibcuda(): CudaLib | null {
  if (cached !== undefined) return cached;
  cached = null;
  for (const name of LIBCUDA_NAMES) {
    try {
      cached = dlopen(name, cudaDefs);
      break;
    } catch {
      // try the next name
    }
  }
  return cached;
}

/** Formats 16 raw UUID bytes the way nvidia-smi does. */
export function formatGpuUuid(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `GPU-${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function initialised(lib: CudaLib): boolean {
  const rc = lib.symbols.cuInit(0);
  if (rc !== CUDA_SUCCESS) {
    // 100 = CUDA_ERROR_NO_DEVICE: a driver without (visible) GPUs.
    consola.info(`libcuda: cuInit failed with CUresult ${rc}; no CUDA devices`);
    return false;
  }
  return true;
}

/** Lists visible CUDA devices, or [] (logged once) when there is no driver or device. */
export function discoverCudaDevices(): CudaDevice[] {
  const lib = openLibcuda();
  if (!lib) {
    consola.info(`libcuda not found (looked for ${LIBCUDA_NAMES.join(", ")}); CPU mode`);
    return [];
  }
  if (!initialised(lib)) return [];
  const s = lib.symbols;
  const count = new Int32Array(1);
  if (s.cuDeviceGetCount(count) !== CUDA_SUCCESS || count[0] === 0) {
    consola.info("libcuda: no CUDA devices visible; CPU mode");
    return [];
  }
  const devices: CudaDevice[] = [];
  for (let index = 0; index < (count[0] ?? 0); index++) {
    const handle = new Int32Array(1);
    if (s.cuDeviceGet(handle, index) !== CUDA_SUCCESS) continue;
    const dev = handle[0] ?? 0;
    const nameBuf = new Uint8Array(256);
    s.cuDeviceGetName(nameBuf, nameBuf.length, dev);
    const nul = nameBuf.indexOf(0);
    const name = new TextDecoder().decode(nameBuf.subarray(0, nul < 0 ? nameBuf.length : nul));
    const uuid = new Uint8Array(16);
    s.cuDeviceGetUuid(uuid, dev);
    const major = new Int32Array(1);
    const minor = new Int32Array(1);
    s.cuDeviceGetAttribute(major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    s.cuDeviceGetAttribute(minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    const total = new BigUint64Array(1);
    s.cuDeviceTotalMem_v2(total, dev);
    devices.push({
      index,
      name,
      uuid: formatGpuUuid(uuid),
      computeCapability: `${major[0]}.${minor[0]}`,
      memoryTotal: Number(total[0] ?? 0n),
    });
  }
  return devices;
}

/**
 * The CUDA version the driver supports, as `major.minor` (13.0 needs driver
 * 580 or later), or undefined without a driver.
 */
export function cudaDriverVersion(): string | undefined {
  const lib = openLibcuda();
  if (!lib) return undefined;
  const version = new Int32Array(1);
  if (lib.symbols.cuDriverGetVersion(version) !== CUDA_SUCCESS) return undefined;
  const v = version[0] ?? 0;
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

/** Primary contexts retained by cudaMemoryInfo, per device ordinal; kept for the life of the process. */
const primaryContexts = new Map<number, bigint>();

/**
 * Free and total bytes on a device as the driver sees them, asked on the
 * device's primary context: the context ggml's CUDA backend (through cudart)
 * allocates in, so `free` already accounts for what the models hold. The
 * context is retained once and kept, as ggml keeps it; retaining and
 * releasing it around each query would create and tear down a context (and
 * its few hundred MiB) every time on an idle device. Returns undefined when
 * the driver cannot answer.
 */
export function cudaMemoryInfo(index: number): { free: number; total: number } | undefined {
  const lib = openLibcuda();
  if (!lib || !initialised(lib)) return undefined;
  const s = lib.symbols;
  let ctx = primaryContexts.get(index);
  if (ctx === undefined) {
    const handle = new Int32Array(1);
    if (s.cuDeviceGet(handle, index) !== CUDA_SUCCESS) return undefined;
    const out = new BigUint64Array(1);
    if (s.cuDevicePrimaryCtxRetain(out, handle[0] ?? 0) !== CUDA_SUCCESS) return undefined;
    ctx = out[0] ?? 0n;
    primaryContexts.set(index, ctx);
  }
  // cuCtxSetCurrent takes the CUcontext value itself; the calling thread is only ever used for queries.
  if (s.cuCtxSetCurrent(ctx) !== CUDA_SUCCESS) return undefined;
  const free = new BigUint64Array(1);
  const total = new BigUint64Array(1);
  if (s.cuMemGetInfo_v2(free, total) !== CUDA_SUCCESS) return undefined;
  return { free: Number(free[0] ?? 0n), total: Number(total[0] ?? 0n) };
}
