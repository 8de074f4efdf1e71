/**
 * `npm run setup:cuda`: sets a GPU node up in one command, after `npm ci`.
 *
 * 1. Puts node-llama-cpp's prebuilt CUDA set (@node-llama-cpp/linux-x64-cuda,
 *    the version of the installed CPU package, ~140 MB) in .cortex-native/cuda/,
 *    where the neuron looks when libcuda finds a GPU. It is not a dependency
 *    in package.json on purpose: every CPU machine and CI run would download it.
 * 2. Finds libcudart.so.13 and libcublas.so.13, which that set needs and does
 *    not ship; when they are missing, installs NVIDIA's pip wheels for them
 *    (into the active virtual environment, else the user's site-packages).
 * 3. Says what the neuron will find: the GPUs, the driver's CUDA version.
 *
 *   npm run setup:cuda [-- --from PACKAGE.tgz] [--no-pip] [--dest DIR]
 *
 * Exit 0 when the set and its libraries are in place, 1 when something is
 * still missing (the message says what), 2 on bad arguments.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { cudaDriverVersion, discoverCudaDevices } from "../ffi/cuda.ts";
import { CUDA_RUNTIME_WHEELS, locateCudaLibs } from "../ffi/cuda-libs.ts";
import versionJson from "../ffi/include/VERSION.json" with { type: "json" };
import { CPU_PACKAGE, CUDA_PACKAGE, LOCAL_NATIVE_DIR } from "../ffi/native-paths.ts";

const root = join(import.meta.dir, "..");
const { values: args } = parseArgs({
  options: {
    from: { type: "string" },
    dest: { type: "string" },
    "no-pip": { type: "boolean", default: false },
  },
});
const say = (line: string) => console.log(`setup:cuda: ${line}`);

function run(cmd: string[], cwd?: string): boolean {
  say(cmd.join(" "));
  return Bun.spawnSync(cmd, { cwd, stdout: "inherit", stderr: "inherit" }).exitCode === 0;
}

/** The CUDA set must be the same release as the CPU one: the headers in ffi/include describe both. */
function wantedVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(root, "node_modules", CPU_PACKAGE, "package.json"), "utf8"));
    return String(pkg.version);
  } catch {
    return versionJson.nodeLlamaCpp;
  }
}

const version = wantedVersion();
const dest = resolve(args.dest ?? join(root, LOCAL_NATIVE_DIR, "cuda"));
const work = mkdtempSync(join(tmpdir(), "cortex-setup-cuda-"));
try {
  const tgz = args.from ? resolve(args.from) : join(work, `node-llama-cpp-linux-x64-cuda-${version}.tgz`);
  if (!args.from && !run(["npm", "pack", "--silent", `${CUDA_PACKAGE}@${version}`], work)) {
    say(
      `could not download ${CUDA_PACKAGE}@${version}; on a machine without network pass --from PACKAGE.tgz`,
    );
    process.exit(1);
  }
  if (!existsSync(tgz)) {
    say(`${tgz} not found`);
    process.exit(args.from ? 2 : 1);
  }
  if (!run(["tar", "xzf", tgz, "-C", work])) process.exit(1);
  const bins = join(work, "package/bins/linux-x64-cuda");
  if (!existsSync(bins)) {
    say(`${tgz} holds no bins/linux-x64-cuda: not the ${CUDA_PACKAGE} package`);
    process.exit(2);
  }
  // The package's version travels with its libraries so the neuron can check it (ffi/native-paths.ts).
  cpSync(join(work, "package/package.json"), join(bins, "package.json"));
  const staged = `${dest}.${process.pid}.tmp`;
  cpSync(bins, staged, { recursive: true });
  rmSync(dest, { recursive: true, force: true });
  renameSync(staged, dest);
  say(`${CUDA_PACKAGE}@${version} -> ${dest}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

let libs = locateCudaLibs();
if (libs.missing.length > 0 && !args["no-pip"]) {
  const python = Bun.which("python3");
  if (python) {
    const target = process.env.VIRTUAL_ENV || process.env.CONDA_PREFIX ? [] : ["--user"];
    run([python, "-m", "pip", "install", ...target, ...CUDA_RUNTIME_WHEELS]);
    libs = locateCudaLibs();
  }
}
for (const [soname, path] of libs.found) say(`${soname}: ${path}`);
const devices = discoverCudaDevices();
say(
  devices.length > 0
    ? `${devices.length} GPU(s): ${devices.map((d) => `${d.name} (sm_${d.computeCapability.replace(".", "")})`).join(", ")}; the driver supports CUDA ${cudaDriverVersion() ?? "?"} (this set needs 13.0: driver 580 or later)`
    : "libcuda finds no GPU here: the neuron will run as a CPU node",
);
if (libs.missing.length > 0) {
  say(
    `still missing: ${libs.missing.join(", ")}. Install the CUDA 13 toolkit, or \`python3 -m pip install ${CUDA_RUNTIME_WHEELS.join(" ")}\`, or set CORTEX_CUDA_LIB_DIR to the folder that holds them`,
  );
  process.exit(1);
}
say("done: `npm run neuron` (or `cortex neuron`) now serves on the GPUs");
