import { type FileHandle, open } from "node:fs/promises";
import { CortexError } from "../../core/errors.ts";
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  type GgufArraySummary,
  type GgufValue,
  type GgufValueTypeName,
  ggmlTensorBytes,
  ggmlTypeName,
  llamaFileTypeName,
  valueTypeName,
} from "./gguf-types.ts";
import { checkLlamaLimits, MAX_METADATA_STRING_BYTES } from "./llama-limits.ts";

/** One tensor's header entry; the data itself is never read. */
export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: number[];
  /** ggml type code (`enum ggml_type`). */
  type: number;
  /** ggml type name, e.g. "F16", "Q4_K". */
  typeName: string;
  /** Offset of the data relative to `dataOffset`. */
  offset: number;
  elements: number;
  /** Bytes of data, undefined for a type whose layout this build does not know. */
  bytes: number | undefined;
}

/** What the neuron needs to know about a model file without loading it. */
export interface GgufInfo {
  path: string;
  /** GGUF format version (2 or 3). */
  version: number;
  fileSize: number;
  /** `general.architecture`, e.g. "llama". */
  architecture: string | undefined;
  /** `general.name`. */
  name: string | undefined;
  /** Sum of all tensors' element counts. */
  parameterCount: number;
  /** File type name from `general.file_type` (e.g. "Q4_K_M"), else the dominant matrix type (e.g. "F16"). */
  quantization: string;
  /** `<arch>.context_length`: the trained context. */
  contextLength: number | undefined;
  hasChatTemplate: boolean;
  chatTemplate: string | undefined;
  bosTokenId: number | undefined;
  eosTokenId: number | undefined;
  eotTokenId: number | undefined;
  alignment: number;
  /** Absolute file offset where tensor data starts. */
  dataOffset: number;
  tensors: GgufTensorInfo[];
  /** Every metadata key/value; long arrays may be summaries (see `ReadGgufOptions.maxArrayItems`). */
  metadata: Record<string, GgufValue>;
}

export interface ReadGgufOptions {
  /**
   * Arrays with more items than this are skipped and reported as `GgufArraySummary`
   * (token lists and merges of big vocabularies are tens of MB). Default 1024.
   */
  maxArrayItems?: number;
  /** Bytes read from disk per chunk. Default 1 MiB. */
  chunkBytes?: number;
}

const MAX_DIMS = 8;
const FIXED_SIZES: Readonly<Partial<Record<GgufValueTypeName, number>>> = {
  uint8: 1,
  int8: 1,
  bool: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  uint64: 8,
  int64: 8,
  float64: 8,
};

/**
 * Reads a GGUF file's header, metadata and tensor infos, touching only the header bytes
 * (read in chunks, so multi-GB files cost a few reads).
 * @throws CortexError("invalid_model_file") when the file is not GGUF, is truncated, is malformed
 *   or has header values past llama.cpp's limits (llama-limits.ts).
 */
export async function readGgufInfo(path: string, options: ReadGgufOptions = {}): Promise<GgufInfo> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw new CortexError("invalid_model_file", `cannot open GGUF file ${path}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  try {
    const { size } = await handle.stat();
    const cursor = new FileCursor(handle, path, size, options.chunkBytes ?? 1 << 20);
    return await parse(cursor, path, size, options.maxArrayItems ?? 1024);
  } catch (error) {
    if (error instanceof CortexError) throw error;
    throw new CortexError("invalid_model_file", `cannot read GGUF file ${path}: ${errorMessage(error)}`, {
      cause: error,
    });
  } finally {
    await handle.close();
  }
}

async function parse(cursor: FileCursor, path: string, fileSize: number, maxArrayItems: number) {
  if (fileSize < 4) throw invalid(path, `not a GGUF file (${fileSize} bytes)`);
  await cursor.ensure(4);
  if (cursor.u32() !== GGUF_MAGIC) throw invalid(path, "not a GGUF file (bad magic)");
  await cursor.ensure(20);
  const version = cursor.u32();
  if (version === 1) throw invalid(path, "GGUF version 1 is not supported");
  if (version !== 2 && version !== 3) {
    const hint = (version & 0xffff) === 0 ? " (big-endian files are not supported)" : "";
    throw invalid(path, `unsupported GGUF version ${version}${hint}`);
  }
  const tensorCount = cursor.u64();
  const kvCount = cursor.u64();
  // Every tensor info and key/value takes well over one byte; bigger counts are garbage.
  if (tensorCount > fileSize || kvCount > fileSize) throw invalid(path, "corrupt header counts");

  const metadata: Record<string, GgufValue> = {};
  for (let i = 0; i < kvCount; i++) {
    const key = await cursor.string();
    await cursor.ensure(4);
    const type = cursor.valueType();
    metadata[key] = await readValue(cursor, type, maxArrayItems);
  }

  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = await cursor.string();
    await cursor.ensure(4);
    const nDims = cursor.u32();
    if (nDims > MAX_DIMS) throw invalid(path, `tensor ${name} has ${nDims} dimensions`);
    await cursor.ensure(nDims * 8 + 12);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(cursor.u64());
    const type = cursor.u32();
    const offset = cursor.u64();
    const elements = dims.reduce((a, b) => a * b, 1);
    tensors.push({
      name,
      dims,
      type,
      typeName: ggmlTypeName(type),
      offset,
      elements,
      bytes: ggmlTensorBytes(type, elements),
    });
  }

  const alignmentValue = metadata["general.alignment"];
  const alignment =
    typeof alignmentValue === "number" && alignmentValue > 0 ? alignmentValue : GGUF_DEFAULT_ALIGNMENT;
  const dataOffset = alignUp(cursor.position, alignment);
  for (const tensor of tensors) {
    const end = dataOffset + tensor.offset + (tensor.bytes ?? 0);
    if (end > fileSize) {
      throw invalid(
        path,
        `truncated: tensor ${tensor.name} ends at byte ${end} but the file has ${fileSize}`,
      );
    }
  }

  const architecture = stringValue(metadata["general.architecture"]);
  const beyondLimits = checkLlamaLimits({ architecture, metadata, tensors });
  if (beyondLimits !== undefined) throw invalid(path, beyondLimits);
  const chatTemplate = stringValue(metadata["tokenizer.chat_template"]);
  return {
    path,
    version,
    fileSize,
    architecture,
    name: stringValue(metadata["general.name"]),
    parameterCount: tensors.reduce((sum, t) => sum + t.elements, 0),
    quantization: quantizationName(metadata["general.file_type"], tensors),
    contextLength:
      architecture === undefined ? undefined : numberValue(metadata[`${architecture}.context_length`]),
    hasChatTemplate: chatTemplate !== undefined && chatTemplate.length > 0,
    chatTemplate,
    bosTokenId: numberValue(metadata["tokenizer.ggml.bos_token_id"]),
    eosTokenId: numberValue(metadata["tokenizer.ggml.eos_token_id"]),
    eotTokenId: numberValue(metadata["tokenizer.ggml.eot_token_id"]),
    alignment,
    dataOffset,
    tensors,
    metadata,
  } satisfies GgufInfo;
}

async function readValue(
  cursor: FileCursor,
  type: GgufValueTypeName,
  maxArrayItems: number,
): Promise<GgufValue> {
  if (type === "string") return cursor.string();
  if (type !== "array") {
    await cursor.ensure(FIXED_SIZES[type] ?? 0);
    return cursor.scalar(type);
  }
  await cursor.ensure(12);
  const itemType = cursor.valueType();
  const length = cursor.u64();
  const itemSize = FIXED_SIZES[itemType];
  // A string item takes at least its 8-byte length; an array item its 12-byte header.
  const minBytes = length * (itemSize ?? (itemType === "string" ? 8 : 12));
  if (cursor.position + minBytes > cursor.fileSize) cursor.truncated(`an array of ${length} ${itemType}`);
  if (length > maxArrayItems) {
    await skipArray(cursor, itemType, length);
    return { kind: "array_summary", itemType, length } satisfies GgufArraySummary;
  }
  const items: GgufValue[] = [];
  if (itemSize !== undefined) {
    await cursor.ensure(length * itemSize);
    for (let i = 0; i < length; i++) items.push(cursor.scalar(itemType));
    return items;
  }
  for (let i = 0; i < length; i++) {
    const buffered = itemType === "string" ? cursor.bufferedString() : undefined;
    items.push(buffered ?? (await readValue(cursor, itemType, maxArrayItems)));
  }
  return items;
}

async function skipArray(cursor: FileCursor, itemType: GgufValueTypeName, length: number): Promise<void> {
  const itemSize = FIXED_SIZES[itemType];
  if (itemSize !== undefined) {
    cursor.skip(length * itemSize);
    return;
  }
  for (let i = 0; i < length; i++) {
    if (itemType === "string") {
      const pending = cursor.ensure(8);
      if (pending) await pending;
      cursor.skip(cursor.u64());
    } else {
      await cursor.ensure(12);
      const nestedType = cursor.valueType();
      await skipArray(cursor, nestedType, cursor.u64());
    }
  }
}

/** Sequential reader over a file that keeps only one chunk in memory. */
class FileCursor {
  private buffer: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  private view = new DataView(this.buffer.buffer);
  /** File offset of buffer[0]. */
  private bufferStart = 0;
  /** Current offset into the file. */
  position = 0;
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
    readonly fileSize: number,
    private readonly chunkBytes: number,
  ) {}

  /**
   * Makes the next `n` bytes available to the synchronous getters. Returns undefined when they
   * already are, so hot loops can skip the await (one per token of a 256K vocabulary adds up).
   */
  ensure(n: number): Promise<void> | undefined {
    return this.position + n <= this.bufferStart + this.buffer.length ? undefined : this.fill(n);
  }

  private async fill(n: number): Promise<void> {
    if (this.position + n > this.fileSize) this.truncated(`${n} bytes at offset ${this.position}`);
    const length = Math.min(Math.max(n, this.chunkBytes), this.fileSize - this.position);
    const next = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await this.handle.read(next, filled, length - filled, this.position + filled);
      if (bytesRead === 0) this.truncated(`${n} bytes at offset ${this.position}`);
      filled += bytesRead;
    }
    this.buffer = next;
    this.view = new DataView(next.buffer);
    this.bufferStart = this.position;
  }

  skip(n: number): void {
    if (this.position + n > this.fileSize) this.truncated(`${n} bytes at offset ${this.position}`);
    this.position += n;
  }

  truncated(what: string): never {
    throw invalid(this.path, `truncated: expected ${what} but the file has ${this.fileSize} bytes`);
  }

  private take(n: number): number {
    const at = this.position - this.bufferStart;
    this.position += n;
    return at;
  }

  u32(): number {
    return this.view.getUint32(this.take(4), true);
  }

  u64(): number {
    return Number(this.view.getBigUint64(this.take(8), true));
  }

  valueType(): GgufValueTypeName {
    const code = this.u32();
    const name = valueTypeName(code);
    if (name === undefined) throw invalid(this.path, `unknown metadata value type ${code}`);
    return name;
  }

  async string(): Promise<string> {
    let pending = this.ensure(8);
    if (pending) await pending;
    const length = this.u64();
    if (length > MAX_METADATA_STRING_BYTES)
      throw invalid(this.path, `a string of ${length} bytes (at most ${MAX_METADATA_STRING_BYTES} are read)`);
    if (this.position + length > this.fileSize) this.truncated(`a string of ${length} bytes`);
    pending = this.ensure(length);
    if (pending) await pending;
    const at = this.take(length);
    return this.decoder.decode(this.buffer.subarray(at, at + length));
  }

  /** The next string if it is wholly in the buffer (without awaiting), else undefined. */
  bufferedString(): string | undefined {
    const at = this.position - this.bufferStart;
    if (at + 8 > this.buffer.length) return undefined;
    const length = Number(this.view.getBigUint64(at, true));
    if (at + 8 + length > this.buffer.length) return undefined;
    this.position += 8 + length;
    return this.decoder.decode(this.buffer.subarray(at + 8, at + 8 + length));
  }

  scalar(type: GgufValueTypeName): GgufValue {
    const v = this.view;
    switch (type) {
      case "uint8":
        return v.getUint8(this.take(1));
      case "int8":
        return v.getInt8(this.take(1));
      case "bool":
        return v.getUint8(this.take(1)) !== 0;
      case "uint16":
        return v.getUint16(this.take(2), true);
      case "int16":
        return v.getInt16(this.take(2), true);
      case "uint32":
        return v.getUint32(this.take(4), true);
      case "int32":
        return v.getInt32(this.take(4), true);
      case "float32":
        return v.getFloat32(this.take(4), true);
      case "float64":
        return v.getFloat64(this.take(8), true);
      case "uint64":
        return safeNumber(v.getBigUint64(this.take(8), true));
      case "int64":
        return safeNumber(v.getBigInt64(this.take(8), true));
      case "string":
      case "array":
        throw new Error(`scalar() called for ${type}`);
      default: {
        const exhaustive: never = type;
        throw new Error(`unknown type ${String(exhaustive)}`);
      }
    }
  }
}

function quantizationName(fileType: GgufValue | undefined, tensors: readonly GgufTensorInfo[]): string {
  if (typeof fileType === "number") {
    const name = llamaFileTypeName(fileType);
    if (name !== undefined) return name;
  }
  // Norms and biases stay F32 in every quantized file; the matrices tell the story.
  const elementsByType = new Map<string, number>();
  for (const tensor of tensors) {
    if (tensor.dims.length < 2) continue;
    elementsByType.set(tensor.typeName, (elementsByType.get(tensor.typeName) ?? 0) + tensor.elements);
  }
  let best = "unknown";
  let bestElements = -1;
  for (const [typeName, elements] of elementsByType) {
    if (elements > bestElements) {
      best = typeName;
      bestElements = elements;
    }
  }
  return best;
}

function safeNumber(value: bigint): number | bigint {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(value)
    : value;
}

function stringValue(value: GgufValue | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function numberValue(value: GgufValue | undefined): number | undefined {
  return typeof value === "number" ? value : undefined;
}

function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

function invalid(path: string, reason: string): CortexError {
  return new CortexError("invalid_model_file", `invalid GGUF file ${path}: ${reason}`);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
