/**
 * llama.cpp's hard limits on a model's header values, checked before a file
 * reaches libllama: past some of them it does not fail, it asserts
 * (`GGML_ASSERT(n_layer_all <= LLAMA_MAX_LAYERS)`) and aborts the whole
 * neuron. A file that breaks one is refused with the key, its value and the
 * limit, so the neuron stays up and the gateway knows the file is at fault.
 */
import type { GgufValue } from "./gguf-types.ts";

/** `LLAMA_MAX_LAYERS` in llama.cpp's src/llama-hparams.h (not among the public headers in ffi/include). */
export const LLAMA_MAX_LAYERS = 512;
/** `LLAMA_MAX_EXPERTS` in llama.cpp's src/llama-hparams.h. */
export const LLAMA_MAX_EXPERTS = 512;
/** `GGML_MAX_DIMS` in ffi/include/ggml.h. */
export const GGML_MAX_DIMS = 4;
/** `GGML_MAX_NAME` in ffi/include/ggml.h, the terminating NUL included. */
export const GGML_MAX_NAME = 64;
/**
 * Longest metadata string read: the longest real ones are chat templates of
 * tens of KB; a header claiming gigabytes is corrupt or hostile.
 */
export const MAX_METADATA_STRING_BYTES = 64 * 1024 * 1024;
/** llama.cpp reads these hyperparameters into `uint32_t`. */
const UINT32_MAX = 0xffff_ffff;

/** The header values `checkLlamaLimits` reads. */
export interface LlamaHeader {
  architecture: string | undefined;
  metadata: Readonly<Record<string, GgufValue>>;
  tensors: ReadonlyArray<{
    name: string;
    dims: readonly number[];
    typeName: string;
    bytes: number | undefined;
  }>;
}

/** The first of llama.cpp's limits the header breaks, as a sentence; undefined when it keeps them all. */
export function checkLlamaLimits(header: LlamaHeader): string | undefined {
  for (const tensor of header.tensors) {
    const problem = tensorProblem(tensor);
    if (problem !== undefined) return problem;
  }
  const arch = header.architecture;
  if (arch === undefined) return undefined;
  const key = (name: string) => `${arch}.${name}`;
  for (const [name, value] of Object.entries(header.metadata)) {
    if (!name.startsWith(`${arch}.`)) continue;
    const problem = hyperparameterProblem(name, value);
    if (problem !== undefined) return problem;
  }
  const layers = header.metadata[key("block_count")];
  if (layers !== undefined && !(typeof layers === "number" && layers >= 1 && layers <= LLAMA_MAX_LAYERS))
    return `${key("block_count")} = ${show(layers)}: llama.cpp allows 1 to ${LLAMA_MAX_LAYERS} layers`;
  const experts = header.metadata[key("expert_count")];
  if (typeof experts === "number" && experts > LLAMA_MAX_EXPERTS)
    return `${key("expert_count")} = ${experts}: llama.cpp allows at most ${LLAMA_MAX_EXPERTS} experts`;
  const used = header.metadata[key("expert_used_count")];
  if (typeof used === "number" && used > (typeof experts === "number" ? experts : 0))
    return `${key("expert_used_count")} = ${used} is more than ${key("expert_count")} = ${show(experts ?? 0)}`;
  const nextn = header.metadata[key("nextn_predict_layers")];
  if (typeof nextn === "number" && typeof layers === "number" && nextn > layers)
    return `${key("nextn_predict_layers")} = ${nextn} is more than ${key("block_count")} = ${layers}`;
  return undefined;
}

function tensorProblem(tensor: LlamaHeader["tensors"][number]): string | undefined {
  if (new TextEncoder().encode(tensor.name).length >= GGML_MAX_NAME)
    return `tensor name ${JSON.stringify(tensor.name.slice(0, 80))} is longer than ${GGML_MAX_NAME - 1} bytes`;
  if (tensor.dims.length > GGML_MAX_DIMS)
    return `tensor ${tensor.name} has ${tensor.dims.length} dimensions (ggml allows ${GGML_MAX_DIMS})`;
  if (tensor.bytes === undefined) return `tensor ${tensor.name} has an unknown type ${tensor.typeName}`;
  const elements = tensor.dims.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(elements))
    return `tensor ${tensor.name} has ${tensor.dims.join(" × ")} elements, past what ggml can address`;
  return undefined;
}

/** Counts, lengths and sizes of `<arch>.*` are unsigned 32-bit in llama.cpp, scalars or per-layer arrays. */
function hyperparameterProblem(name: string, value: GgufValue): string | undefined {
  if (!/(_count|_length|_size|_dim)$/.test(name)) return undefined;
  if (Array.isArray(value)) {
    if (value.length > LLAMA_MAX_LAYERS)
      return `${name} has ${value.length} per-layer values: llama.cpp allows at most ${LLAMA_MAX_LAYERS}`;
    for (const item of value) {
      const problem = hyperparameterProblem(name, item);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= UINT32_MAX)
    return undefined;
  if (typeof value === "number" || typeof value === "bigint")
    return `${name} = ${show(value)}: expected an integer from 0 to ${UINT32_MAX}`;
  return undefined;
}

function show(value: GgufValue): string {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value.kind : String(value);
}
