/**
 * Continuous batching for one model inside its device Worker: every active
 * sequence advances in the same llama_decode per step (one token each while
 * generating, prompt chunks while prefilling), new sequences join at the next
 * step. A finished sequence's slot keeps its KV, so that the next prompt
 * sharing its prefix prefills only the rest (slot-kv.ts).
 */
import { ptr } from "bun:ffi";
import { cString, type LlamaSamplerPtr } from "../../../ffi/llama-symbols.ts";
import { CortexError, toCortexError } from "../../core/errors.ts";
import { completionBudget } from "./context-budget.ts";
import { BATCH_TOKENS, type NativeModel, type NativeRuntime } from "./native-runtime.ts";
import type { SlotKv } from "./slot-kv.ts";
import { TokenText } from "./token-text.ts";
import type { FinishReason, GenerateParams, GenerationEvent, GrammarSpec } from "./types.ts";

/** A native failure that poisons the device (as opposed to a bad request). */
export class DeviceFault extends Error {
  override readonly name = "DeviceFault";
}

interface Sequence {
  key: number;
  slot: number;
  prompt: Int32Array;
  /** Prompt tokens already decoded (those reused from the slot's KV included). */
  prefilled: number;
  /** Prompt tokens whose KV was reused instead of computed. */
  reused: number;
  /** Tokens sampled so far (the last one not yet decoded). */
  sampled: number[];
  sampler: LlamaSamplerPtr;
  /** The chain is llama.cpp's greedy sampler alone: sampled by shim_sample_greedy, without the chain's copy of the logits. */
  greedy: boolean;
  /** Grammar sampler kept beside the chain (shim_sample_constrained), or null. */
  grammar: LlamaSamplerPtr | null;
  maxTokens: number;
  completion: number;
  lastToken: number;
  text: TokenText;
  /** Special tokens rendered as text: the markers the output's parser reads. */
  preserved: ReadonlySet<number>;
  cancelled: boolean;
  /** Its consumer fell behind: skipped by steps, slot and KV kept. */
  paused: boolean;
}

export type EventSink = (seqKey: number, event: GenerationEvent) => void;

export interface SchedulerStats {
  decodeCalls: number;
  tokensDecoded: number;
  tokensSampled: number;
}

const DEFAULT_PENALTY_LAST_N = 64;

/**
 * Whether the chain shim_sampler_new builds for `p` is the greedy sampler
 * alone: temperature ≤ 0, no logit bias, no penalty. Compared in doubles,
 * where the chain compares floats: a value that rounds to "off" there still
 * counts as on here, so a sequence marked greedy always has a greedy-only chain.
 */
export function plainGreedy(p: GenerateParams, biasCount: number): boolean {
  const penalties =
    (p.penaltyLastN ?? DEFAULT_PENALTY_LAST_N) !== 0 &&
    ((p.repeatPenalty ?? 1) !== 1 || (p.frequencyPenalty ?? 0) !== 0 || (p.presencePenalty ?? 0) !== 0);
  return (p.temperature ?? 1) <= 0 && biasCount === 0 && !penalties;
}

/** What `planBatch` needs of a sequence. */
interface Plannable {
  slot: number;
  prompt: { readonly length: number };
  /** Prompt tokens already decoded: all of them once it generates. */
  prefilled: number;
  paused: boolean;
}

/**
 * Which sequences a step decodes and how many tokens each: every generating
 * sequence one (that keeps their latency flat while prompts prefill), then
 * prompt chunks in arrival order while the batch has room. Returned in
 * ascending slot order, the order the batch is written in: each slot is its
 * own KV stream (kv_unified = false), and llama.cpp cuts a batch into
 * ubatches of sequences with consecutive ids in the order they first appear
 * (llama_batch_allocr::split_equal, sequential), so slots 2, 3, 0, 1 written
 * in that order run as two ubatches, each paying for every weight again,
 * where 0, 1, 2, 3 run as one. Measured on Gemma 3 270M with 4 streams:
 * 60–75 ms a step against 95–120 ms.
 */
export function planBatch<T extends Plannable>(
  active: Iterable<T>,
  room: number,
): Array<{ seq: T; take: number }> {
  const arrived = [...active];
  const planned: Array<{ seq: T; take: number }> = [];
  for (const seq of arrived) {
    if (seq.paused || seq.prefilled < seq.prompt.length) continue;
    planned.push({ seq, take: 1 });
    room--;
  }
  for (const seq of arrived) {
    if (room <= 0) break;
    const left = seq.prompt.length - seq.prefilled;
    if (left <= 0 || seq.paused) continue;
    const take = Math.min(left, room);
    planned.push({ seq, take });
    room -= take;
  }
  return planned.sort((a, b) => a.seq.slot - b.seq.slot);
}

export class BatchScheduler {
  readonly #rt: NativeRuntime;
  readonly #model: NativeModel;
  readonly #contextSize: number;
  readonly #emit: EventSink;
  readonly #stats: SchedulerStats;
  readonly #slots: SlotKv;
  /** Submitted while every slot was busy; admitted as slots free up. */
  readonly #waiting: Array<{ key: number; params: GenerateParams }> = [];
  readonly #active = new Map<number, Sequence>();
  // Reused step buffers, sized for a full batch.
  readonly #tokens = new Int32Array(BATCH_TOKENS);
  readonly #pos = new Int32Array(BATCH_TOKENS);
  readonly #seq = new Int32Array(BATCH_TOKENS);
  readonly #logits = new Int8Array(BATCH_TOKENS);
  /** llama_token_data[nVocab] for constrained sampling; made on first use. */
  #candidates: Uint8Array | undefined;
  /** Set by fault injection: the next decode runs with the abort flag raised. */
  failNextDecode = false;
  /** What the last `step` decoded (undefined when it decoded nothing), for metrics. */
  lastBatch: { sequences: number; tokens: number } | undefined;

  constructor(
    rt: NativeRuntime,
    model: NativeModel,
    opts: { contextSize: number; slots: SlotKv },
    emit: EventSink,
    stats: SchedulerStats,
  ) {
    this.#rt = rt;
    this.#model = model;
    this.#contextSize = opts.contextSize;
    this.#emit = emit;
    this.#stats = stats;
    this.#slots = opts.slots;
  }

  /** Whether a step would do anything (paused sequences wait for a resume message). */
  get busy(): boolean {
    if (this.#waiting.length > 0 && this.#slots.free > 0) return true;
    for (const seq of this.#active.values()) if (!seq.paused || seq.cancelled) return true;
    return false;
  }

  /** KV cells held by live sequences (prompt decoded so far plus completion). */
  get kvTokens(): number {
    let used = 0;
    for (const seq of this.#active.values()) used += seq.prefilled + Math.max(0, seq.completion - 1);
    return used;
  }

  setPaused(key: number, paused: boolean): void {
    const seq = this.#active.get(key);
    if (seq) seq.paused = paused;
  }

  /** Validates and queues a sequence; request errors go to its stream, not to the device. */
  submit(key: number, params: GenerateParams): void {
    this.#waiting.push({ key, params });
    this.#admit();
  }

  cancel(key: number): void {
    const waitingAt = this.#waiting.findIndex((w) => w.key === key);
    if (waitingAt >= 0) {
      this.#waiting.splice(waitingAt, 1);
      this.#emit(key, {
        type: "done",
        finishReason: "stop",
        usage: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 },
      });
      return;
    }
    const seq = this.#active.get(key);
    if (seq) seq.cancelled = true;
  }

  /** Ends every sequence with an error (unload with force, device fault). */
  failAll(error: CortexError): void {
    for (const w of this.#waiting.splice(0)) this.#emit(w.key, { type: "error", error: error.toWire() });
    for (const seq of [...this.#active.values()])
      this.#release(seq, { type: "error", error: error.toWire() });
  }

  /** Clears the KV cache; only valid while idle. */
  resetKv(): void {
    if (this.#active.size > 0)
      throw new CortexError("conflict", "cannot reset the KV cache while sequences run");
    this.#rt.llama.llama_memory_clear(this.#model.memory, true);
    this.#slots.forgetAll();
  }

  #admit(): void {
    while (this.#waiting.length > 0 && this.#slots.free > 0) {
      const next = this.#waiting.shift()!;
      try {
        this.#start(next.key, next.params);
      } catch (error) {
        this.#emit(next.key, { type: "error", error: toCortexError(error).toWire() });
      }
    }
  }

  /**
   * A prompt whose byte length alone proves it cannot fit is refused before
   * it is tokenized (tokenizing megabytes only to count them held the Worker).
   */
  #refuseLongPrompt(prompt: string): void {
    // Fewer bytes than the context can never prove anything: skip the count.
    if (prompt.length * 3 < this.#contextSize) return;
    const bytes = Buffer.byteLength(prompt, "utf8");
    if (bytes < this.#contextSize) return;
    const atLeast = Math.ceil(bytes / this.#model.maxTokenBytes());
    if (atLeast >= this.#contextSize)
      throw new CortexError(
        "context_length_exceeded",
        `the prompt is at least ${atLeast} tokens (${bytes} bytes), but the model's context is ${this.#contextSize} tokens`,
        { details: { prompt_tokens_at_least: atLeast, context_size: this.#contextSize } },
      );
  }

  #start(key: number, params: GenerateParams): void {
    this.#refuseLongPrompt(params.prompt);
    const prompt = this.#model.tokenize(params.prompt);
    if (prompt.length === 0)
      throw new CortexError("invalid_request", "the prompt is empty", { param: "messages" });
    const maxTokens = completionBudget({
      promptTokens: prompt.length,
      contextSize: this.#contextSize,
      maxTokens: params.maxTokens,
      overflow: params.contextOverflow ?? "error",
    });
    // Before a slot is taken: a grammar that does not parse is the request's fault.
    const grammar = params.grammar === undefined ? null : this.#makeGrammar(params.grammar);
    let sampler: { chain: LlamaSamplerPtr; greedy: boolean };
    try {
      sampler = this.#makeSampler(params);
    } catch (error) {
      if (grammar) this.#rt.llama.llama_sampler_free(grammar);
      throw error;
    }
    const { slot, reused } = this.#slots.take(prompt);
    this.#emit(key, { type: "start", promptTokens: prompt.length, cachedTokens: reused });
    this.#active.set(key, {
      key,
      slot,
      prompt: prompt.slice(),
      prefilled: reused,
      reused,
      sampled: [],
      sampler: sampler.chain,
      greedy: sampler.greedy && grammar === null,
      grammar,
      maxTokens,
      completion: 0,
      lastToken: -1,
      text: new TokenText(params.stop ?? []),
      preserved: this.#preservedTokens(params.preservedTokens),
      cancelled: false,
      paused: false,
    });
  }

  /** Markers that are one token in this vocabulary; others are plain text already. */
  #preservedTokens(markers: readonly string[] | undefined): ReadonlySet<number> {
    const ids = new Set<number>();
    for (const marker of markers ?? []) {
      const tokens = this.#model.tokenize(marker, false);
      if (tokens.length === 1) ids.add(tokens[0]!);
    }
    return ids;
  }

  #makeGrammar(spec: GrammarSpec): LlamaSamplerPtr {
    const { llama } = this.#rt;
    const text = cString(spec.gbnf);
    const root = cString("root");
    const patterns = (spec.triggerPatterns ?? []).map(cString);
    const grammar =
      patterns.length === 0
        ? llama.llama_sampler_init_grammar(this.#model.vocab, text, root)
        : llama.llama_sampler_init_grammar_lazy_patterns(
            this.#model.vocab,
            text,
            root,
            new BigUint64Array(patterns.map((pattern) => BigInt(ptr(pattern)))),
            patterns.length,
            null,
            0,
          );
    this.#rt.drainLog();
    if (!grammar)
      throw new CortexError("invalid_request", "llama.cpp could not parse the request's grammar", {
        param: "grammar",
      });
    return grammar;
  }

  #makeSampler(p: GenerateParams): { chain: LlamaSamplerPtr; greedy: boolean } {
    const bias = Object.entries(p.logitBias ?? {}).filter(([token]) => {
      const id = Number(token);
      return Number.isInteger(id) && id >= 0 && id < this.#model.nVocab;
    });
    const sampler = this.#rt.shim.shim_sampler_new(
      this.#model.nVocab,
      p.temperature ?? 1,
      p.topK ?? 0,
      p.topP ?? 1,
      p.minP ?? 0,
      // A missing seed still has to differ between requests.
      p.seed ?? Math.floor(Math.random() * 0xffffffff),
      p.penaltyLastN ?? DEFAULT_PENALTY_LAST_N,
      p.repeatPenalty ?? 1,
      p.frequencyPenalty ?? 0,
      p.presencePenalty ?? 0,
      bias.length,
      bias.length > 0 ? new Int32Array(bias.map(([t]) => Number(t))) : null,
      bias.length > 0 ? new Float32Array(bias.map(([, v]) => v)) : null,
    );
    if (!sampler) throw new DeviceFault("llama_sampler_chain_init returned null");
    return { chain: sampler, greedy: plainGreedy(p, bias.length) };
  }

  /**
   * Runs one llama_decode over every active sequence and samples where a
   * sequence produced logits. Returns whether work remains.
   */
  step(): boolean {
    this.lastBatch = undefined;
    for (const seq of [...this.#active.values()]) if (seq.cancelled) this.#finish(seq, "stop");
    this.#admit();
    if (!this.busy) return false;
    const planned = planBatch(this.#active.values(), BATCH_TOKENS);
    if (planned.length === 0) return this.busy;
    let n = 0;
    const outputs: Array<{ seq: Sequence; index: number }> = [];
    for (const { seq, take } of planned) {
      if (seq.prefilled >= seq.prompt.length) {
        this.#put(n, seq.lastToken, seq.prompt.length + seq.completion - 1, seq.slot, true);
        outputs.push({ seq, index: n });
        n++;
        continue;
      }
      for (let i = 0; i < take; i++) {
        const at = seq.prefilled + i;
        const last = at === seq.prompt.length - 1;
        this.#put(n, seq.prompt[at]!, at, seq.slot, last);
        if (last) outputs.push({ seq, index: n });
        n++;
      }
      seq.prefilled += take;
    }
    const sequences = planned.length;
    if (this.failNextDecode) {
      this.failNextDecode = false;
      Atomics.store(this.#rt.abortFlag, 0, 1);
    }
    const rc = this.#rt.shim.shim_batch_decode(
      this.#model.ctx,
      this.#model.batch,
      n,
      this.#tokens,
      this.#pos,
      this.#seq,
      this.#logits,
    );
    this.#stats.decodeCalls++;
    this.#stats.tokensDecoded += n;
    this.lastBatch = { sequences, tokens: n };
    if (rc !== 0) {
      const aborted = Atomics.exchange(this.#rt.abortFlag, 0, 0) !== 0;
      throw new DeviceFault(
        rc === 2 || aborted ? "llama_decode was aborted" : `llama_decode failed with status ${rc}`,
      );
    }
    for (const { seq, index } of outputs) this.#sample(seq, index);
    return this.busy;
  }

  #put(i: number, token: number, pos: number, slot: number, logits: boolean): void {
    this.#tokens[i] = token;
    this.#pos[i] = pos;
    this.#seq[i] = slot;
    this.#logits[i] = logits ? 1 : 0;
  }

  #sample(seq: Sequence, index: number): void {
    if (seq.cancelled) return;
    const token = seq.greedy
      ? this.#sampleGreedy(index)
      : seq.grammar
        ? this.#sampleConstrained(seq, index)
        : this.#rt.llama.llama_sampler_sample(seq.sampler, this.#model.ctx, index);
    this.#stats.tokensSampled++;
    seq.completion++;
    seq.sampled.push(token);
    if (this.#rt.llama.llama_vocab_is_eog(this.#model.vocab, token)) {
      this.#finish(seq, "stop");
      return;
    }
    const pushed = seq.text.push(this.#model.piece(token, seq.preserved.has(token)));
    if (pushed.text) this.#emit(seq.key, { type: "text", text: pushed.text });
    if (pushed.stopped !== undefined) {
      this.#finish(seq, "stop", pushed.stopped);
      return;
    }
    if (seq.completion >= seq.maxTokens) {
      this.#finish(seq, "length");
      return;
    }
    seq.lastToken = token;
  }

  #sampleGreedy(index: number): number {
    const token = this.#rt.shim.shim_sample_greedy(this.#model.ctx, index, this.#model.nVocab);
    if (token < 0) throw new DeviceFault("greedy sampling found no logits");
    return token;
  }

  #sampleConstrained(seq: Sequence, index: number): number {
    const nVocab = this.#model.nVocab;
    this.#candidates ??= new Uint8Array(nVocab * 12);
    const token = this.#rt.shim.shim_sample_constrained(
      seq.sampler,
      seq.grammar!,
      this.#model.ctx,
      index,
      this.#candidates,
      nVocab,
    );
    if (token < 0) throw new DeviceFault("constrained sampling found no logits");
    return token;
  }

  #finish(seq: Sequence, reason: FinishReason, stopSequence?: string): void {
    if (stopSequence === undefined && !seq.cancelled) {
      const rest = seq.text.finish();
      if (rest) this.#emit(seq.key, { type: "text", text: rest });
    }
    this.#release(seq, {
      type: "done",
      finishReason: reason,
      usage: { promptTokens: seq.prompt.length, completionTokens: seq.completion, cachedTokens: seq.reused },
      ...(stopSequence === undefined ? {} : { stopSequence }),
    });
  }

  #release(seq: Sequence, last: GenerationEvent): void {
    this.#active.delete(seq.key);
    if (last.type === "error") this.#slots.releaseCleared(seq.slot);
    else this.#slots.release(seq.slot, heldTokens(seq));
    this.#rt.llama.llama_sampler_free(seq.sampler);
    if (seq.grammar) this.#rt.llama.llama_sampler_free(seq.grammar);
    this.#emit(seq.key, last);
  }

  /** Frees every sampler; the model itself is freed by its owner. */
  dispose(): void {
    this.failAll(new CortexError("unavailable", "the model was unloaded"));
    this.#slots.dispose();
  }
}

/** The tokens whose KV a sequence's slot holds: the prompt decoded so far, then every sampled token but the last (never decoded). */
function heldTokens(seq: Sequence): Int32Array {
  if (seq.prefilled < seq.prompt.length || seq.sampled.length <= 1)
    return seq.prompt.subarray(0, seq.prefilled);
  const held = new Int32Array(seq.prompt.length + seq.sampled.length - 1);
  held.set(seq.prompt);
  held.set(seq.sampled.slice(0, -1), seq.prompt.length);
  return held;
}
