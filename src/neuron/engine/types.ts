/**
 * Public types of the inference engine (main-thread side). Everything here
 * is plain data: it crosses the Worker boundary by structured clone.
 */
import type { WireError } from "../../core/errors.ts";
import type { OutputFormat } from "../tool-formats/output-format.ts";
import type { PrefixReuseStats } from "./slot-kv.ts";

export type FinishReason = "stop" | "length" | "tool_calls";

export interface Usage {
  promptTokens: number;
  /** Tokens sampled for this request, the end-of-generation token included. */
  completionTokens: number;
  /** Prompt tokens whose KV cache was reused from an earlier request (part of promptTokens, not computed again). */
  cachedTokens: number;
  /** Of completionTokens, those spent reasoning (set where the output's parser splits reasoning off). */
  reasoningTokens?: number;
}

/** An OpenAI-style tool call parsed from model output. */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export type GenerationEvent =
  /** The sequence took its slot: its prompt's size and how much of it was reused (before any output). */
  | { type: "start"; promptTokens: number; cachedTokens: number }
  | { type: "text"; text: string }
  /** The model's reasoning, split from the answer. */
  | { type: "reasoning"; text: string }
  | { type: "tool_calls"; calls: ToolCall[] }
  /** A call streamed as it is generated: its start, argument text, end (indices count in the answer). */
  | { type: "tool_call_start"; id: string; name: string }
  | { type: "tool_call_delta"; argumentsDelta: string }
  | { type: "tool_call_end" }
  | { type: "done"; finishReason: FinishReason; usage: Usage; stopSequence?: string }
  | { type: "error"; error: WireError };

/** Sampling and limits of one sequence. Defaults follow OpenAI's. */
export interface SamplingParams {
  /** 0 = greedy. Default 1. */
  temperature?: number;
  topP?: number;
  /** 0 = disabled. */
  topK?: number;
  minP?: number;
  /** Random seed; fixed seeds give repeatable output at any temperature. */
  seed?: number;
  /** llama.cpp repetition penalty (1 = off). */
  repeatPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Window of recent tokens the penalties look at. Default 64. */
  penaltyLastN?: number;
  /** Token id → additive logit bias (OpenAI `logit_bias`). */
  logitBias?: Record<string, number>;
}

export interface GenerateParams extends SamplingParams {
  /** Fully rendered prompt (see src/neuron/prompt/); special tokens in it are parsed. */
  prompt: string;
  /** Upper bound on completion tokens; default: whatever the context has left. */
  maxTokens?: number;
  /** Strings that end generation; never emitted, even when split across tokens. */
  stop?: string[];
  /** What to do when prompt + maxTokens exceed the context. Default "error". */
  contextOverflow?: "error" | "clamp";
  /**
   * How the model writes tool calls and reasoning (src/neuron/tool-formats/):
   * the output is split into answer, reasoning and calls. Absent: plain text.
   */
  output?: OutputFormat;
  /** Special tokens to render as text (the format's markers), where each is one token. */
  preservedTokens?: string[];
  /** Constrains sampling to a GBNF grammar (structured output, forced tool calls). */
  grammar?: GrammarSpec;
}

/** A GBNF grammar whose start rule is `root`. */
export interface GrammarSpec {
  gbnf: string;
  /**
   * Lazy grammar: nothing is constrained until one of these regexes
   * (std::regex ECMAScript, searched in the output so far) matches; the
   * grammar then applies from the match on (a tool call the model starts).
   */
  triggerPatterns?: string[];
}

export interface LoadOptions {
  /** Public id the model is served under. */
  id: string;
  /** GGUF path (absolute or relative to the process' cwd). */
  path: string;
  /** Tokens each sequence may use (prompt + completion). Default 4096. */
  contextSize?: number;
  /** Sequences decoded together. Default 1. */
  slots?: number;
  /** Devices to place the model on; default: the first device with room. More than one forms a tensor-parallel group. */
  deviceIds?: string[];
  /** Number of devices when `deviceIds` is absent; > 1 forms a tensor-parallel group. Default 1. */
  deviceCount?: number;
  /** Requests allowed to wait for a slot before 429. Default 4 × slots. */
  maxQueue?: number;
  /** Overrides the estimate used to check free memory before loading. */
  memoryEstimateBytes?: number;
  /** The GGUF file as the API names it (relative to the models directory); default: `path`. */
  file?: string;
  /** Never evicted by a gateway; reloaded by a recycle of its device. */
  pinned?: boolean;
  /** Eviction priority (higher stays longer). */
  priority?: number;
}

/** What the engine knows about a loaded model; renders chat prompts without native calls. */
export interface ModelInfo {
  id: string;
  path: string;
  deviceIds: string[];
  contextSize: number;
  slots: number;
  trainedContextSize: number;
  /** `tokenizer.chat_template`, or null when the GGUF has none. */
  chatTemplate: string | null;
  bosToken: string;
  eosToken: string;
  addBos: boolean;
  /** Bytes held: weights + KV cache + compute buffers. */
  memoryBytes: number;
  description: string;
  loadedAt: number;
}

/** One decode step of a model, as the metrics see it. */
export interface StepObservation {
  modelId: string;
  /** Sequences in the step's llama_decode (0: nothing decoded). */
  batchSize: number;
  tokens: number;
  /** KV cells the model's live sequences hold after the step. */
  kvTokens: number;
  /** Milliseconds the step took (a group's lockstep collective included). */
  ms: number;
  /** Stepped by a tensor-parallel group's watchdog. */
  group: boolean;
}

/** Hooks the engine calls as work happens (the neuron's metrics); each must be cheap and never throw. */
export interface EngineObserver {
  /** A model's prefix-reuse figures (cumulative since its load) changed. */
  prefixReuse?(modelId: string, stats: PrefixReuseStats): void;
  step?(step: StepObservation): void;
  /** A sequence ended normally; `usage` is what its client was told. */
  sequenceDone?(modelId: string, usage: Usage): void;
  modelLoaded?(modelId: string, ms: number, deviceIds: readonly string[]): void;
  /** A sequence's reader fell behind: the Worker was told to pause it until the reader catches up. */
  sequencePaused?(modelId: string): void;
}
