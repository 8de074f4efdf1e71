/**
 * Whether this machine's C compiler builds working AMX code for this CPU, for
 * the two scripts that compile llama.cpp here (scripts/build-native.ts and
 * bench/peers/build-llama-server.ts).
 *
 * GCC 12's `_tile_loadconfig` tells the optimizer it reads 8 bytes of the
 * 64-byte tile configuration (amxtileintrin.h: `"m" (*((const void **)
 * __config))`), so at -O2 the stores that fill the rest are dropped and
 * `ldtilecfg` loads a configuration with no rows. ggml's AMX kernels
 * (ggml-cpu/amx/mmq.cpp) fill theirs that way; built with that compiler on a
 * Sapphire Rapids Xeon, llama-bench and llama-server die with SIGILL on
 * `tilezero` at the first prefill, and a neuron on such a native set would
 * too. The prebuilt package's AMX variant, built with another compiler,
 * works on the same machine, and is 2-4x faster there than a build without
 * AMX (its repacked weights serve decode too). So the check compiles ggml's
 * pattern with the compiler the build will use and runs it; where it fails,
 * `-fno-dse` keeps the stores, and only where that fails too is AMX left
 * out.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const PROBE = `
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
typedef struct {
  unsigned char palette_id, start_row, reserved[14];
  unsigned short colsb[16];
  unsigned char rows[16];
} tile_config_t;
/* As ggml_tile_config_init: a zeroed configuration filled field by field, then loaded. */
__attribute__((noinline)) static void configure(void) {
  _Alignas(64) tile_config_t tc = {0};
  tc.palette_id = 1;
  for (int i = 0; i < 8; i++) { tc.rows[i] = 16; tc.colsb[i] = 64; }
  _tile_loadconfig(&tc);
}
int main(void) {
  /* ARCH_REQ_XCOMP_PERM for XTILEDATA, as ggml_amx_init asks. */
  if (syscall(SYS_arch_prctl, 0x1023, 18)) return 3;
  configure();
  _tile_zero(4);
  _tile_release();
  return 0;
}
`;

/** The instruction-set flags /proc/cpuinfo lists for this x86 CPU; undefined elsewhere, or when it lists none. */
export function x86CpuFlags(): Set<string> | undefined {
  if (process.arch !== "x64" || !existsSync("/proc/cpuinfo")) return undefined;
  const line = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  return line === undefined ? undefined : new Set(line.trim().split(/\s+/));
}

/** CMake options that pass `flags` to both the C and the C++ compiler (none for no flags). */
export function compilerFlagOptions(flags: readonly string[]): string[] {
  if (flags.length === 0) return [];
  const joined = flags.join(" ");
  return [`-DCMAKE_C_FLAGS=${joined}`, `-DCMAKE_CXX_FLAGS=${joined}`];
}

/** How a llama.cpp build on this machine gets working AMX code. */
export interface AmxBuild {
  /** Whether the build may include AMX (false: leave GGML_AMX_* out, `-mno-amx-*`). */
  amx: boolean;
  /** C and C++ flags the build needs for it (`-fno-dse`), none when it needs nothing. */
  cflags: string[];
  /** What was found, for the build's log; absent when the CPU has no AMX or it builds as it is. */
  note?: string;
}

/** Builds the probe with `flags` and runs it: undefined when it works, else what failed. */
function probe(compiler: string, flags: string[]): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), "cortex-amx-check-"));
  try {
    writeFileSync(join(dir, "probe.c"), PROBE);
    const built = Bun.spawnSync(
      [compiler, "-O2", "-mamx-tile", "-mamx-int8", ...flags, "-o", join(dir, "probe"), join(dir, "probe.c")],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (built.exitCode !== 0)
      return `${compiler} cannot compile AMX code: ${built.stderr.toString().trim().split("\n")[0]}`;
    const ran = Bun.spawnSync([join(dir, "probe")], { stdout: "pipe", stderr: "pipe" });
    if (ran.exitCode === 0) return undefined;
    if (ran.exitCode === 3) return "the kernel refuses AMX to this process (arch_prctl ARCH_REQ_XCOMP_PERM)";
    return `AMX code built by ${[compiler, "-O2", ...flags].join(" ")} fails here (${ran.signalCode ?? `exit ${ran.exitCode}`})`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What a llama.cpp build on this machine needs for AMX: nothing (no AMX on
 * this CPU, or the probe works as built), `-fno-dse` (the stores survive
 * without RTL dead-store elimination: GCC 12), or AMX left out.
 */
export function amxBuild(compiler = process.env.CC ?? "cc"): AmxBuild {
  // No AMX on this CPU: a build for it compiles none of ggml's AMX kernels.
  if (!x86CpuFlags()?.has("amx_tile")) return { amx: false, cflags: [] };
  const plain = probe(compiler, []);
  if (plain === undefined) return { amx: true, cflags: [] };
  if (probe(compiler, ["-fno-dse"]) === undefined)
    return {
      amx: true,
      cflags: ["-fno-dse"],
      note: `${plain}: the tile configuration's stores are dropped (GCC 12's _tile_loadconfig); built with -fno-dse, which keeps them`,
    };
  return { amx: false, cflags: [], note: `${plain}; AMX left out` };
}

if (import.meta.main) console.log(amxBuild());
