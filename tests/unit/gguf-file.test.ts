import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexError } from "../../src/core/errors.ts";
import { readGgufInfo } from "../../src/neuron/gguf/gguf-reader.ts";
import type { GgufTypedValue } from "../../src/neuron/gguf/gguf-types.ts";
import { type GgufWriteSpec, gv, writeGguf } from "../../src/neuron/gguf/gguf-writer.ts";

const dir = mkdtempSync(join(tmpdir(), "cortex-gguf-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const f32 = Float32Array.from({ length: 6 }, (_, i) => i + 0.5);
const f16 = Float16Array.from({ length: 5 }, (_, i) => -i / 4);
const streamed = Float32Array.from({ length: 100 }, (_, i) => i * 3);

const metadata: Array<readonly [string, GgufTypedValue]> = [
  ["general.architecture", gv.str("llama")],
  ["general.name", gv.str("round trip ✓")],
  ["llama.context_length", gv.u32(4096)],
  ["test.u8", gv.u8(255)],
  ["test.i8", gv.i8(-128)],
  ["test.u16", gv.u16(65535)],
  ["test.i16", gv.i16(-32768)],
  ["test.i32", gv.i32(-5)],
  ["test.u64", gv.u64(2n ** 40n)],
  ["test.u64_big", gv.u64(2n ** 63n + 1n)],
  ["test.i64", gv.i64(-7)],
  ["test.f32", gv.f32(0.25)],
  ["test.f64", gv.f64(Math.PI)],
  ["test.bool", gv.bool(true)],
  ["test.empty", gv.str("")],
  ["test.strings", gv.arr("string", ["a", "βγ", ""])],
  ["test.floats", gv.arr("float32", [1, -2.5])],
  ["test.bools", gv.arr("bool", [true, false])],
  [
    "test.long",
    gv.arr(
      "int32",
      Array.from({ length: 2000 }, (_, i) => i),
    ),
  ],
  ["tokenizer.chat_template", gv.str("{{ messages }}")],
  ["tokenizer.ggml.bos_token_id", gv.u32(1)],
  ["tokenizer.ggml.eos_token_id", gv.u32(2)],
];

const spec: GgufWriteSpec = {
  metadata,
  tensors: [
    { name: "a", type: "F32", dims: [3, 2], data: f32 },
    { name: "b", type: "F16", dims: [5], data: f16 },
    {
      name: "c",
      type: "F32",
      dims: [10, 10],
      data: function* () {
        for (let i = 0; i < 100; i += 30) yield new Uint8Array(streamed.slice(i, i + 30).buffer);
      },
    },
  ],
};

async function written(name: string, s: GgufWriteSpec = spec): Promise<string> {
  const path = join(dir, name);
  await writeGguf(path, s);
  return path;
}

async function expectInvalid(promise: Promise<unknown>, path: string, fragment: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CortexError);
  expect((error as CortexError).code).toBe("invalid_model_file");
  expect((error as CortexError).message).toContain(path);
  expect((error as CortexError).message).toContain(fragment);
}

describe("GGUF writer and reader", () => {
  test("round-trips every metadata type and aligned tensor data", async () => {
    const path = await written("roundtrip.gguf");
    const info = await readGgufInfo(path, { maxArrayItems: Number.POSITIVE_INFINITY });
    expect(info.version).toBe(3);
    expect(info.architecture).toBe("llama");
    expect(info.name).toBe("round trip ✓");
    expect(info.contextLength).toBe(4096);
    expect(info.hasChatTemplate).toBe(true);
    expect(info.chatTemplate).toBe("{{ messages }}");
    expect([info.bosTokenId, info.eosTokenId, info.eotTokenId]).toEqual([1, 2, undefined]);
    expect(info.parameterCount).toBe(6 + 5 + 100);
    expect(info.quantization).toBe("F32");
    const m = info.metadata;
    expect([m["test.u8"], m["test.i8"], m["test.u16"], m["test.i16"], m["test.i32"]]).toEqual([
      255, -128, 65535, -32768, -5,
    ]);
    expect(m["test.u64"]).toBe(2 ** 40);
    expect(m["test.u64_big"]).toBe(2n ** 63n + 1n);
    expect(m["test.i64"]).toBe(-7);
    expect(m["test.f32"]).toBe(0.25);
    expect(m["test.f64"]).toBe(Math.PI);
    expect(m["test.bool"]).toBe(true);
    expect(m["test.empty"]).toBe("");
    expect(m["test.strings"]).toEqual(["a", "βγ", ""]);
    expect(m["test.floats"]).toEqual([1, -2.5]);
    expect(m["test.bools"]).toEqual([true, false]);
    expect((m["test.long"] as number[]).length).toBe(2000);

    const bytes = readFileSync(path);
    expect(info.fileSize).toBe(bytes.length);
    expect(info.dataOffset % 32).toBe(0);
    const data = (name: string) => {
      const t = info.tensors.find((x) => x.name === name);
      if (t === undefined || t.bytes === undefined) throw new Error(`no tensor ${name}`);
      expect(t.offset % 32).toBe(0);
      const start = info.dataOffset + t.offset;
      return bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + start + t.bytes);
    };
    expect(new Float32Array(data("a"))).toEqual(f32);
    expect([...new Float16Array(data("b"))]).toEqual([...f16]);
    expect(new Float32Array(data("c"))).toEqual(streamed);
    expect(info.tensors.map((t) => [t.name, t.typeName, t.dims])).toEqual([
      ["a", "F32", [3, 2]],
      ["b", "F16", [5]],
      ["c", "F32", [10, 10]],
    ]);
  });

  test("long arrays are summarised by default and reading in tiny chunks gives the same answer", async () => {
    const path = await written("chunks.gguf");
    const info = await readGgufInfo(path);
    expect(info.metadata["test.long"]).toEqual({ kind: "array_summary", itemType: "int32", length: 2000 });
    expect(info.metadata["test.strings"]).toEqual(["a", "βγ", ""]);
    const chunked = await readGgufInfo(path, { chunkBytes: 7 });
    expect(chunked).toEqual(info);
  });

  test("quantization comes from general.file_type, else from the dominant matrix type", async () => {
    const withFileType = await written("ftype.gguf", {
      metadata: [["general.file_type", gv.u32(15)]],
      tensors: spec.tensors,
    });
    expect((await readGgufInfo(withFileType)).quantization).toBe("Q4_K_M");
    const f16Dominant = await written("f16.gguf", {
      metadata: [],
      tensors: [
        { name: "norm", type: "F32", dims: [64], data: new Float32Array(64) },
        { name: "w", type: "F16", dims: [4, 4], data: new Float16Array(16) },
      ],
    });
    const info = await readGgufInfo(f16Dominant);
    expect(info.quantization).toBe("F16");
    expect(info.architecture).toBeUndefined();
    expect(info.hasChatTemplate).toBe(false);
  });

  test("reads GGUF v2 files", async () => {
    const path = await written("v2.gguf");
    const bytes = readFileSync(path);
    bytes.writeUInt32LE(2, 4);
    writeFileSync(path, bytes);
    const info = await readGgufInfo(path);
    expect(info.version).toBe(2);
    expect(info.tensors.length).toBe(3);
  });

  test("a custom alignment is recorded and honoured", async () => {
    const path = await written("align.gguf", { ...spec, alignment: 64 });
    const info = await readGgufInfo(path);
    expect(info.alignment).toBe(64);
    expect(info.metadata["general.alignment"]).toBe(64);
    expect(info.dataOffset % 64).toBe(0);
    for (const t of info.tensors) expect(t.offset % 64).toBe(0);
  });

  test("non-GGUF, truncated and missing files fail with invalid_model_file naming the path", async () => {
    const text = join(dir, "notes.txt");
    writeFileSync(text, "hello, I am not a model");
    await expectInvalid(readGgufInfo(text), text, "not a GGUF file");

    const empty = join(dir, "empty.gguf");
    writeFileSync(empty, "");
    await expectInvalid(readGgufInfo(empty), empty, "not a GGUF file");

    const full = readFileSync(await written("full.gguf"));
    const cutHeader = join(dir, "cut-header.gguf");
    writeFileSync(cutHeader, full.subarray(0, 200));
    await expectInvalid(readGgufInfo(cutHeader), cutHeader, "truncated");

    const cutData = join(dir, "cut-data.gguf");
    writeFileSync(cutData, full.subarray(0, full.length - 40));
    await expectInvalid(readGgufInfo(cutData), cutData, "truncated");

    const missing = join(dir, "missing.gguf");
    await expectInvalid(readGgufInfo(missing), missing, "cannot open");
  });

  test("the writer refuses tensor data of the wrong size or element type", async () => {
    await expect(
      writeGguf(join(dir, "bad-size.gguf"), {
        metadata: [],
        tensors: [{ name: "x", type: "F32", dims: [4], data: () => [new Uint8Array(8)] }],
      }),
    ).rejects.toThrow("expected 16");
    await expect(
      writeGguf(join(dir, "bad-type.gguf"), {
        metadata: [],
        tensors: [{ name: "x", type: "F16", dims: [4], data: new Float32Array(4) }],
      }),
    ).rejects.toThrow("F16");
  });
});
