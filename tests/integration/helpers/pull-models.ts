/**
 * GGUF files for pull tests, generated (no download): the tiny model whole,
 * the tiny model split in two the way llama.cpp's gguf-split writes a split
 * model (every part a GGUF with `split.no`, `split.count` and
 * `split.tensors.count`; the metadata in the first; named
 * `<name>-0000i-of-0000n.gguf`), and a stand-in projector file.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gv, writeGguf } from "../../../src/neuron/gguf/gguf-writer.ts";
import { buildTinyModel } from "../../../src/neuron/gguf/tiny-model.ts";

type Bytes = Uint8Array<ArrayBuffer>;

export interface PullModels {
  tiny: Bytes;
  /** The tiny model with another name in its metadata: different bytes, same weights. */
  tinyOther: Bytes;
  split: [Bytes, Bytes];
  mmproj: Bytes;
}

export async function makePullModels(): Promise<PullModels> {
  const dir = await mkdtemp(join(tmpdir(), "cortex-pull-models-"));
  try {
    const model = buildTinyModel();
    const { metadata, tensors } = model.spec;
    const write = async (name: string, spec: Parameters<typeof writeGguf>[1]) => {
      await writeGguf(join(dir, name), spec);
      return new Uint8Array(await readFile(join(dir, name)));
    };
    const tiny = await write("tiny.gguf", model.spec);
    const tinyOther = await write("other.gguf", {
      metadata: [...metadata.filter(([key]) => key !== "general.name"), ["general.name", gv.str("other")]],
      tensors,
    });
    const half = Math.ceil(tensors.length / 2);
    const splitKeys = (no: number) =>
      [
        ["split.no", gv.u16(no)],
        ["split.count", gv.u16(2)],
        ["split.tensors.count", gv.i32(tensors.length)],
      ] as const;
    const first = await write("split-1.gguf", {
      metadata: [...metadata, ...splitKeys(0)],
      tensors: tensors.slice(0, half),
    });
    const second = await write("split-2.gguf", { metadata: [...splitKeys(1)], tensors: tensors.slice(half) });
    const mmproj = await write("mmproj.gguf", {
      metadata: [
        ["general.architecture", gv.str("clip")],
        ["general.name", gv.str("projector")],
      ],
      tensors: [{ name: "mm.0.weight", type: "F32", dims: [8], data: new Float32Array(8).fill(1) }],
    });
    return { tiny, tinyOther, split: [first, second], mmproj };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
