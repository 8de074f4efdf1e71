import { open } from "node:fs/promises";
import {
  GGML_TYPE,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VALUE_TYPE,
  type GgufScalar,
  type GgufScalarTypeName,
  type GgufTypedValue,
} from "./gguf-types.ts";

/** Tensor element types the writer can produce. */
export type GgufWritableType = "F32" | "F16";

/**
 * A tensor's data: a typed array holding all of it (Float32Array for F32; Float16Array or raw
 * half bits in a Uint16Array for F16), or a function returning the raw little-endian bytes in
 * chunks, so big tensors never sit in memory whole.
 */
export type GgufTensorSource =
  | Float32Array
  | Float16Array
  | Uint16Array
  | (() => Iterable<Uint8Array> | AsyncIterable<Uint8Array>);

export interface GgufTensorSpec {
  name: string;
  type: GgufWritableType;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: readonly number[];
  data: GgufTensorSource;
}

export interface GgufWriteSpec {
  /** Written in this order. */
  metadata: ReadonlyArray<readonly [string, GgufTypedValue]>;
  tensors: readonly GgufTensorSpec[];
  /** Tensor data alignment; written as `general.alignment` when not 32. */
  alignment?: number;
}

/** Builders for typed metadata values: `gv.u32(4096)`, `gv.arr("string", tokens)`. */
export const gv = {
  u8: (value: number): GgufTypedValue => ({ type: "uint8", value }),
  i8: (value: number): GgufTypedValue => ({ type: "int8", value }),
  u16: (value: number): GgufTypedValue => ({ type: "uint16", value }),
  i16: (value: number): GgufTypedValue => ({ type: "int16", value }),
  u32: (value: number): GgufTypedValue => ({ type: "uint32", value }),
  i32: (value: number): GgufTypedValue => ({ type: "int32", value }),
  u64: (value: number | bigint): GgufTypedValue => ({ type: "uint64", value }),
  i64: (value: number | bigint): GgufTypedValue => ({ type: "int64", value }),
  f32: (value: number): GgufTypedValue => ({ type: "float32", value }),
  f64: (value: number): GgufTypedValue => ({ type: "float64", value }),
  bool: (value: boolean): GgufTypedValue => ({ type: "bool", value }),
  str: (value: string): GgufTypedValue => ({ type: "string", value }),
  arr: (itemType: GgufScalarTypeName, value: readonly GgufScalar[]): GgufTypedValue => ({
    type: "array",
    itemType,
    value,
  }),
};

const BYTES_PER_ELEMENT: Readonly<Record<GgufWritableType, number>> = { F32: 4, F16: 2 };

/** Bytes of data a tensor spec must supply. */
export function tensorByteLength(tensor: Pick<GgufTensorSpec, "type" | "dims">): number {
  return tensor.dims.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[tensor.type];
}

/**
 * Writes a GGUF v3 file, streaming tensor data to disk one chunk at a time.
 * Returns the number of bytes written.
 */
export async function writeGguf(path: string, spec: GgufWriteSpec): Promise<number> {
  const alignment = spec.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const metadata =
    alignment === GGUF_DEFAULT_ALIGNMENT
      ? spec.metadata
      : [...spec.metadata, ["general.alignment", { type: "uint32", value: alignment }] as const];

  const header = new ByteSink();
  header.u32(GGUF_MAGIC);
  header.u32(3);
  header.u64(spec.tensors.length);
  header.u64(metadata.length);
  for (const [key, value] of metadata) {
    header.string(key);
    writeTypedValue(header, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const tensor of spec.tensors) {
    header.string(tensor.name);
    header.u32(tensor.dims.length);
    for (const dim of tensor.dims) header.u64(dim);
    header.u32(GGML_TYPE[tensor.type]);
    header.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + tensorByteLength(tensor), alignment);
  }
  header.pad(alignUp(header.length, alignment) - header.length);

  const handle = await open(path, "w");
  try {
    let written = 0;
    const write = async (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.length - done);
        done += bytesWritten;
      }
      written += bytes.length;
    };
    await write(header.bytes());
    const dataStart = written;
    for (const [i, tensor] of spec.tensors.entries()) {
      const expected = tensorByteLength(tensor);
      const start = written;
      for await (const chunk of tensorChunks(tensor)) await write(chunk);
      if (written - start !== expected) {
        throw new Error(`tensor ${tensor.name}: got ${written - start} bytes of data, expected ${expected}`);
      }
      const padTo =
        i + 1 < spec.tensors.length ? (offsets[i + 1] ?? 0) : alignUp(written - dataStart, alignment);
      const padding = dataStart + padTo - written;
      if (padding > 0) await write(new Uint8Array(padding));
    }
    return written;
  } finally {
    await handle.close();
  }
}

function tensorChunks(tensor: GgufTensorSpec): Iterable<Uint8Array> | AsyncIterable<Uint8Array> {
  const { data } = tensor;
  if (typeof data === "function") return data();
  const elementBytes = BYTES_PER_ELEMENT[tensor.type];
  if (data.BYTES_PER_ELEMENT !== elementBytes) {
    throw new Error(`tensor ${tensor.name}: ${data.constructor.name} data for a ${tensor.type} tensor`);
  }
  // Typed arrays are in host byte order; every platform libllama ships for is little-endian.
  return [new Uint8Array(data.buffer, data.byteOffset, data.byteLength)];
}

function writeTypedValue(sink: ByteSink, value: GgufTypedValue): void {
  sink.u32(GGUF_VALUE_TYPE[value.type]);
  if (value.type !== "array") {
    writeScalar(sink, value.type, value.value);
    return;
  }
  sink.u32(GGUF_VALUE_TYPE[value.itemType]);
  sink.u64(value.value.length);
  for (const item of value.value) writeScalar(sink, value.itemType, item);
}

function writeScalar(sink: ByteSink, type: GgufScalarTypeName, value: GgufScalar): void {
  if (type === "string") {
    if (typeof value !== "string") throw new TypeError(`expected a string, got ${typeof value}`);
    sink.string(value);
    return;
  }
  if (type === "bool") {
    if (typeof value !== "boolean") throw new TypeError(`expected a boolean, got ${typeof value}`);
    sink.u8(value ? 1 : 0);
    return;
  }
  if (typeof value !== "number" && typeof value !== "bigint") {
    throw new TypeError(`expected a number for ${type}, got ${typeof value}`);
  }
  sink.number(type, value);
}

/** Growable little-endian byte buffer for the header. */
class ByteSink {
  private buffer = new Uint8Array(1 << 16);
  private view = new DataView(this.buffer.buffer);
  length = 0;
  private readonly encoder = new TextEncoder();

  private reserve(n: number): number {
    if (this.length + n > this.buffer.length) {
      const next = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
      next.set(this.buffer.subarray(0, this.length));
      this.buffer = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  u8(value: number): void {
    this.view.setUint8(this.reserve(1), value);
  }

  u32(value: number): void {
    this.view.setUint32(this.reserve(4), value, true);
  }

  u64(value: number | bigint): void {
    this.view.setBigUint64(this.reserve(8), BigInt(value), true);
  }

  number(type: Exclude<GgufScalarTypeName, "string" | "bool">, value: number | bigint): void {
    const n = Number(value);
    switch (type) {
      case "uint8":
        this.view.setUint8(this.reserve(1), n);
        break;
      case "int8":
        this.view.setInt8(this.reserve(1), n);
        break;
      case "uint16":
        this.view.setUint16(this.reserve(2), n, true);
        break;
      case "int16":
        this.view.setInt16(this.reserve(2), n, true);
        break;
      case "uint32":
        this.view.setUint32(this.reserve(4), n, true);
        break;
      case "int32":
        this.view.setInt32(this.reserve(4), n, true);
        break;
      case "float32":
        this.view.setFloat32(this.reserve(4), n, true);
        break;
      case "float64":
        this.view.setFloat64(this.reserve(8), n, true);
        break;
      case "uint64":
        this.view.setBigUint64(this.reserve(8), BigInt(value), true);
        break;
      case "int64":
        this.view.setBigInt64(this.reserve(8), BigInt(value), true);
        break;
      default: {
        const exhaustive: never = type;
        throw new Error(`unknown type ${String(exhaustive)}`);
      }
    }
  }

  string(value: string): void {
    const encoded = this.encoder.encode(value);
    this.u64(encoded.length);
    this.buffer.set(encoded, this.reserve(encoded.length));
  }

  pad(n: number): void {
    this.reserve(n); // fresh bytes are already zero
  }

  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}
