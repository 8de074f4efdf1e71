/**
 * Bytes a model will hold once loaded with a given context, used to refuse
 * loads (507) before they fail halfway. Errs on the generous side.
 */
export interface ModelShape {
  /** Weights as stored (GGUF file size or llama_model_size). */
  weightBytes: number;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nVocab: number;
  contextSize: number;
  slots: number;
  batchTokens: number;
}

/** f16 K and V for every layer and every cell of every slot's stream. */
export function kvCacheBytes(shape: Omit<ModelShape, "weightBytes" | "nVocab" | "batchTokens">): number {
  const headDim = shape.nHead > 0 ? shape.nEmbd / shape.nHead : shape.nEmbd;
  const embdKv = headDim * shape.nHeadKv;
  // llama.cpp pads each sequence's stream to 256 cells.
  const cellsPerSlot = Math.ceil(shape.contextSize / 256) * 256;
  return 2 * 2 * shape.nLayer * embdKv * cellsPerSlot * shape.slots;
}

export function estimateModelBytes(shape: ModelShape): number {
  const logits = 4 * shape.nVocab * Math.max(shape.slots, 1);
  // Compute buffer: activations of one full batch, with headroom for attention scratch.
  const compute = 4 * shape.batchTokens * (shape.nEmbd * 8 + shape.nVocab) + 16 * 1024 * 1024;
  return Math.ceil(shape.weightBytes + kvCacheBytes(shape) + logits + compute);
}

/**
 * A device's memory as placement may use it: the configured cap (else the
 * device's size) less what cortex's models are estimated to hold, and never
 * more than the driver (a GPU: cuMemGetInfo) or the OS (the CPU, uncapped)
 * says is free. The estimate is the cap, the live figure the truth.
 */
export function usableMemory(m: {
  /** The device's size: the driver's total for a GPU, RAM for the CPU. */
  physicalTotal: number;
  cap: number | undefined;
  /** Estimated bytes held by the models loaded on it. */
  estimatedUsed: number;
  /** What the driver or OS reports free right now; undefined when it cannot say. */
  liveFree: number | undefined;
}): { total: number; free: number } {
  const total = m.cap === undefined ? m.physicalTotal : Math.min(m.cap, m.physicalTotal);
  const free = Math.max(0, total - m.estimatedUsed);
  return { total, free: m.liveFree === undefined ? free : Math.min(free, m.liveFree) };
}
