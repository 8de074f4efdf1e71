/**
 * How much device memory a model needs before it is loaded, when its
 * profile gives no `vram_estimate`. The gateway has only the GGUF file size,
 * not the architecture, so the KV cache is estimated from it:
 *
 *   need = fileSize × 1.1  +  contextSize × slots × fileSize / 65 536
 *
 * The 10 % covers compute buffers and logits. The per-token KV term is one
 * byte of cache per 64 KiB of weights per token of context: ≈ 60 KiB/token
 * for a 4 GiB 7B GQA model (real: 56 KiB), 2× generous for 70B-class GQA
 * models and for tiny ones; generous is the safe side, since the neuron
 * still checks its own estimate and answers 507 when a load cannot fit.
 * A tensor-parallel model (devices = k) needs need / k on each device.
 */
import type { ModelProfile } from "../../core/config/config-schema.ts";

export const WEIGHT_OVERHEAD_FACTOR = 1.1;
export const WEIGHT_BYTES_PER_KV_BYTE_PER_TOKEN = 65_536;

export function estimateMemoryBytes(
  profile: Pick<ModelProfile, "vram_estimate" | "context_size" | "slots">,
  fileSizeBytes: number,
): number {
  if (profile.vram_estimate !== undefined) return profile.vram_estimate;
  const kvPerToken = fileSizeBytes / WEIGHT_BYTES_PER_KV_BYTE_PER_TOKEN;
  return Math.ceil(
    fileSizeBytes * WEIGHT_OVERHEAD_FACTOR + profile.context_size * profile.slots * kvPerToken,
  );
}

/** "6.0 GiB", "512 MiB": memory as operators read it in messages. */
export function formatBytes(bytes: number): string {
  const GiB = 1024 ** 3;
  const MiB = 1024 ** 2;
  if (Math.abs(bytes) >= GiB) return `${(bytes / GiB).toFixed(1)} GiB`;
  if (Math.abs(bytes) >= MiB) return `${Math.round(bytes / MiB)} MiB`;
  return `${Math.round(bytes / 1024)} KiB`;
}
