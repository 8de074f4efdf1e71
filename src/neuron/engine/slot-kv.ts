/**
 * Prefix reuse of one model's KV cache, Worker side. A slot keeps its KV
 * after a request ends; the next request takes the free slot whose tokens
 * share the longest prefix with its prompt (slot-prefixes.ts), only the
 * diverging tail is removed (`llama_memory_seq_rm(mem, slot, n, -1)`), and
 * the scheduler prefills the rest. At least the last prompt token is always
 * evaluated so that logits exist. Memory that cannot be cut (recurrent or
 * hybrid state, a sliding window that already dropped the start: llama.cpp
 * says which) falls back to a full prefill, counted and logged once.
 *
 * With a host-memory cache (prompt-cache.ts), a slot about to lose most of
 * what it holds is saved first, and a prompt that matches a saved state
 * better than any slot has it restored into its slot.
 */
import { consola } from "consola";
import type { NativeModel, NativeRuntime } from "./native-runtime.ts";
import type { PromptCache, PromptCacheEntry, PromptCacheStats } from "./prompt-cache.ts";
import { MIN_SHARED_FRACTION, SlotPrefixes } from "./slot-prefixes.ts";

export type ReuseFallback = "recurrent" | "hybrid" | "sliding_window" | "refused";

/** What prefix reuse did for one model so far; crosses to the main thread for the metrics. */
export interface PrefixReuseStats {
  /** Requests that could have reused a prefix but had to prefill all of it. */
  fallbacks: number;
  /** Host-memory cache figures for this model; absent when the cache is off. */
  hostCache?: PromptCacheStats;
}

const STATE_FLAGS_NONE = 0;

/**
 * Prefill batches of a few tokens over a long KV cache are slow on ggml's
 * CPU backend: below 64 tokens each token costs about what a generation step
 * does, from 64 on a batched kernel takes over. Measured at position ~15.7k
 * on the demo model, 1 thread: 36 new tokens 67–75 ms, 56 tokens ~110 ms,
 * 64 tokens ~4 ms, 152 tokens ~12 ms. So a turn that adds only a few tokens
 * (an agent's short reply after a long history) re-evaluates some of the
 * reused prefix with them, up to this many: the same KV, computed faster.
 * Over a short KV the per-token path is cheap, and the answer's reported
 * cached tokens stay whole.
 */
export const MIN_PREFILL_BATCH = 64;
/** Below this many new tokens the per-token path costs no more than one batch of MIN_PREFILL_BATCH. */
const PAD_FROM = 4;
/** Only a reused prefix at least this long makes the per-token path slow enough to matter. */
const PAD_OVER_KV = 1024;

/** Where the prompt's prefill starts, given how much of it the slot could reuse (`reusable`). */
export function prefillFrom(promptLength: number, reusable: number): number {
  const fresh = promptLength - reusable;
  if (reusable < PAD_OVER_KV || fresh < PAD_FROM || fresh >= MIN_PREFILL_BATCH) return reusable;
  return Math.max(0, promptLength - MIN_PREFILL_BATCH);
}

export class SlotKv {
  readonly #rt: NativeRuntime;
  readonly #model: NativeModel;
  readonly #modelId: string;
  readonly #prefixes: SlotPrefixes;
  readonly #cache: PromptCache | undefined;
  /** Why this model's memory can never be cut short, if it cannot. */
  readonly #uncuttable: ReuseFallback | undefined;
  #fallbacks = 0;
  #logged = false;

  constructor(
    rt: NativeRuntime,
    model: NativeModel,
    opts: { modelId: string; slots: number; cache?: PromptCache | undefined },
  ) {
    this.#rt = rt;
    this.#model = model;
    this.#modelId = opts.modelId;
    this.#prefixes = new SlotPrefixes(opts.slots);
    this.#cache = opts.cache?.enabled ? opts.cache : undefined;
    this.#uncuttable = rt.llama.llama_model_is_recurrent(model.model)
      ? "recurrent"
      : rt.llama.llama_model_is_hybrid(model.model)
        ? "hybrid"
        : undefined;
  }

  get free(): number {
    return this.#prefixes.free;
  }

  get stats(): PrefixReuseStats {
    return {
      fallbacks: this.#fallbacks,
      ...(this.#cache ? { hostCache: this.#cache.stats(this.#modelId) } : {}),
    };
  }

  /**
   * Takes the best free slot for `prompt` and prepares its KV. Returns the
   * slot and how many leading prompt tokens its KV already holds (always
   * fewer than the prompt has).
   */
  take(prompt: Int32Array): { slot: number; reused: number } {
    const { slot, common } = this.#prefixes.choose(prompt);
    this.#prefixes.take(slot);
    let held = this.#prefixes.held(slot);
    let wanted = common;
    const saved = this.#cache ? this.#savedBetter(prompt, common) : undefined;
    const keepOwn = saved ? 0 : Math.min(common, prompt.length - 1);
    // About to lose most of what the slot holds: keep it in host memory.
    if (this.#cache && held.length > 0 && keepOwn < held.length / 2) this.#save(slot, held);
    if (saved) {
      if (this.#restore(slot, saved.entry, saved.common)) {
        held = saved.entry.tokens;
        wanted = saved.common;
      } else {
        held = this.#clear(slot);
        wanted = 0;
      }
    } else if (this.#cache && common < prompt.length - 1) {
      this.#cache.miss(this.#modelId);
    }
    return {
      slot,
      reused: this.#cut(slot, held, prefillFrom(prompt.length, Math.min(wanted, prompt.length - 1))),
    };
  }

  /**
   * The most bytes saving one free slot's state would take now: what the
   * Worker prepares a spare buffer for while idle (0 with no cache).
   */
  largestSave(): number {
    if (!this.#cache) return 0;
    let largest = 0;
    for (const slot of this.#prefixes.freeSlots()) {
      if (this.#prefixes.held(slot).length === 0) continue;
      largest = Math.max(largest, this.#stateSize(slot));
    }
    return largest;
  }

  /** Frees a slot whose KV holds exactly `held` (prompt and generated tokens decoded). */
  release(slot: number, held: Int32Array): void {
    this.#prefixes.release(slot, held);
  }

  /** Frees a slot whose KV content is unknown (a failed sequence): cleared. */
  releaseCleared(slot: number): void {
    this.#rt.llama.llama_memory_seq_rm(this.#model.memory, slot, -1, -1);
    this.#prefixes.release(slot, this.#prefixes.held(slot).subarray(0, 0));
  }

  /** The whole KV cache was cleared: nothing is left to reuse, saved states included. */
  forgetAll(): void {
    this.#prefixes.forgetAll();
    this.#cache?.clear(this.#modelId);
  }

  /** The model goes: its saved states go with it. */
  dispose(): void {
    this.#cache?.dropModel(this.#modelId);
  }

  /** A saved state matching the prompt better than the slot does, and usable on this model. */
  #savedBetter(prompt: Int32Array, common: number): { entry: PromptCacheEntry; common: number } | undefined {
    const saved = this.#cache?.best(this.#modelId, prompt);
    // As for slots: a few shared template tokens are no reason to restore a whole state.
    if (!saved || saved.common <= common || saved.common < saved.entry.tokens.length * MIN_SHARED_FRACTION)
      return undefined;
    const needsCut = Math.min(saved.common, prompt.length - 1) < saved.entry.tokens.length;
    return needsCut && this.#uncuttable ? undefined : saved;
  }

  /** Keeps the first `want` tokens of what the slot holds; returns how many it kept. */
  #cut(slot: number, held: Int32Array, want: number): number {
    if (want >= held.length) return held.length;
    if (want <= 0) {
      this.#clear(slot);
      return 0;
    }
    const { llama } = this.#rt;
    const memory = this.#model.memory;
    const reason: ReuseFallback | undefined =
      this.#uncuttable ??
      // Positions below pos_min are gone (a sliding window moved on): the tail cannot be re-evaluated.
      (llama.llama_memory_seq_pos_min(memory, slot) > 0
        ? "sliding_window"
        : llama.llama_memory_seq_rm(memory, slot, want, -1)
          ? undefined
          : "refused");
    if (reason === undefined) return want;
    this.#fallback(reason);
    this.#clear(slot);
    return 0;
  }

  #clear(slot: number): Int32Array {
    this.#rt.llama.llama_memory_seq_rm(this.#model.memory, slot, -1, -1);
    this.#prefixes.forget(slot);
    return this.#prefixes.held(slot);
  }

  #fallback(reason: ReuseFallback): void {
    this.#fallbacks++;
    if (this.#logged) return;
    this.#logged = true;
    const why = {
      recurrent: "its memory is recurrent (llama_model_is_recurrent)",
      hybrid: "its memory is hybrid (llama_model_is_hybrid)",
      sliding_window: `its sliding-window attention (${this.#rt.llama.llama_model_n_swa(this.#model.model)} tokens) has dropped the start of the sequence`,
      refused: "llama_memory_seq_rm refused to remove a partial range",
    }[reason];
    consola.info(
      `${this.#modelId}: a prompt prefix cannot be reused because ${why}; such requests prefill their whole prompt (counted in cortex_neuron_prefix_reuse_fallbacks_total)`,
    );
  }

  #save(slot: number, held: Int32Array): void {
    const cache = this.#cache;
    if (!cache) return;
    const size = this.#stateSize(slot);
    const buffer = size > 0 ? cache.buffer(size) : undefined;
    if (!buffer) return;
    const written = this.#rt.llama.llama_state_seq_get_data_ext(
      this.#model.ctx,
      buffer,
      size,
      slot,
      STATE_FLAGS_NONE,
    );
    if (written > 0) cache.put({ model: this.#modelId, tokens: held, state: buffer.subarray(0, written) });
    else cache.giveBack(buffer);
  }

  /** Bytes the slot's sequence state takes (llama.cpp sizes it with a dry run of the save). */
  #stateSize(slot: number): number {
    return this.#rt.llama.llama_state_seq_get_size_ext(this.#model.ctx, slot, STATE_FLAGS_NONE);
  }

  #restore(slot: number, entry: PromptCacheEntry, common: number): boolean {
    const { llama } = this.#rt;
    const read = llama.llama_state_seq_set_data_ext(
      this.#model.ctx,
      entry.state,
      entry.state.byteLength,
      slot,
      STATE_FLAGS_NONE,
    );
    // Only now may a moved entry's buffer become a spare for the next save.
    this.#cache?.restored(entry, common * 2 >= entry.tokens.length);
    return read > 0;
  }
}
