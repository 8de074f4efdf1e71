/**
 * Shared vocabulary of the GGUF file format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
 * value type codes, ggml tensor types and llama.cpp file types, as pinned by the vendored headers
 * (ffi/include/ggml.h, ffi/include/llama.h).
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value type codes (`enum gguf_type`). */
export const GGUF_VALUE_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

export type GgufValueTypeName = keyof typeof GGUF_VALUE_TYPE;
export type GgufScalarTypeName = Exclude<GgufValueTypeName, "array">;

/** A decoded metadata value. 64-bit integers outside the safe range come back as bigint. */
export type GgufScalar = number | bigint | boolean | string;

/** Stand-in for an array the reader chose not to materialise (see `maxArrayItems`). */
export interface GgufArraySummary {
  readonly kind: "array_summary";
  readonly itemType: GgufValueTypeName;
  readonly length: number;
}

export type GgufValue = GgufScalar | GgufValue[] | GgufArraySummary;

/** A metadata value together with the type it is (or is to be) stored as. */
export type GgufTypedValue =
  | { readonly type: GgufScalarTypeName; readonly value: GgufScalar }
  | { readonly type: "array"; readonly itemType: GgufScalarTypeName; readonly value: readonly GgufScalar[] };

const VALUE_TYPE_BY_CODE = new Map<number, GgufValueTypeName>(
  Object.entries(GGUF_VALUE_TYPE).map(([name, code]) => [code, name as GgufValueTypeName]),
);

export function valueTypeName(code: number): GgufValueTypeName | undefined {
  return VALUE_TYPE_BY_CODE.get(code);
}

/** ggml tensor types (`enum ggml_type`); gaps are types removed from the format. */
export const GGML_TYPE = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
  NVFP4: 40,
  Q1_0: 41,
  Q2_0: 42,
} as const;

export type GgmlTypeName = keyof typeof GGML_TYPE;

const GGML_TYPE_BY_CODE = new Map<number, GgmlTypeName>(
  Object.entries(GGML_TYPE).map(([name, code]) => [code, name as GgmlTypeName]),
);

/** Name of a ggml tensor type, or `TYPE_<n>` for a code this build does not know. */
export function ggmlTypeName(code: number): string {
  return GGML_TYPE_BY_CODE.get(code) ?? `TYPE_${code}`;
}

/** llama.cpp file types (`enum llama_ftype`, the value of `general.file_type`). */
const LLAMA_FILE_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  19: "IQ2_XXS",
  20: "IQ2_XS",
  21: "Q2_K_S",
  22: "IQ3_XS",
  23: "IQ3_XXS",
  24: "IQ1_S",
  25: "IQ4_NL",
  26: "IQ3_S",
  27: "IQ3_M",
  28: "IQ2_S",
  29: "IQ2_M",
  30: "IQ4_XS",
  31: "IQ1_M",
  32: "BF16",
  36: "TQ1_0",
  37: "TQ2_0",
  38: "MXFP4_MOE",
  39: "NVFP4",
  40: "Q1_0",
  41: "Q2_0",
};

export const LLAMA_FILE_TYPE = { ALL_F32: 0, MOSTLY_F16: 1 } as const;

export function llamaFileTypeName(code: number): string | undefined {
  return LLAMA_FILE_TYPE_NAMES[code];
}

/** Token types of `tokenizer.ggml.token_type` (`enum llama_token_type`). */
export const LLAMA_TOKEN_TYPE = {
  undefined: 0,
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

/** Elements per block and bytes per block of the ggml types whose layout this code knows. */
const GGML_TYPE_LAYOUT: Readonly<Partial<Record<GgmlTypeName, readonly [number, number]>>> = {
  F32: [1, 4],
  F16: [1, 2],
  BF16: [1, 2],
  F64: [1, 8],
  I8: [1, 1],
  I16: [1, 2],
  I32: [1, 4],
  I64: [1, 8],
  Q4_0: [32, 18],
  Q4_1: [32, 20],
  Q5_0: [32, 22],
  Q5_1: [32, 24],
  Q8_0: [32, 34],
  Q8_1: [32, 36],
  IQ4_NL: [32, 18],
  MXFP4: [32, 17],
  Q2_K: [256, 84],
  Q3_K: [256, 110],
  Q4_K: [256, 144],
  Q5_K: [256, 176],
  Q6_K: [256, 210],
  Q8_K: [256, 292],
  IQ2_XXS: [256, 66],
  IQ2_XS: [256, 74],
  IQ3_XXS: [256, 98],
  IQ1_S: [256, 50],
  IQ3_S: [256, 110],
  IQ2_S: [256, 82],
  IQ4_XS: [256, 136],
  IQ1_M: [256, 56],
  TQ1_0: [256, 54],
  TQ2_0: [256, 66],
};

/** Bytes a tensor of `elements` elements of ggml type `code` occupies, or undefined for an unknown layout. */
export function ggmlTensorBytes(code: number, elements: number): number | undefined {
  const name = GGML_TYPE_BY_CODE.get(code);
  const layout = name === undefined ? undefined : GGML_TYPE_LAYOUT[name];
  if (layout === undefined) return undefined;
  const [blockElements, blockBytes] = layout;
  return Math.ceil(elements / blockElements) * blockBytes;
}
