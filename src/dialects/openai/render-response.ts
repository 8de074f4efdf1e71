import type { CanonicalResponse, CanonicalUsage } from "../canonical.ts";
import { toOpenAIFinishReason } from "../map-openai-finish-reason.ts";

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

export interface OpenAIToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface OpenAIChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: {
      role: "assistant";
      content: string | null;
      refusal: null;
      tool_calls?: OpenAIToolCall[];
      /** Not OpenAI: the reasoning text, as llama.cpp and DeepSeek send it. */
      reasoning_content?: string;
    };
    logprobs: null;
    finish_reason: "stop" | "length" | "tool_calls";
    stop_sequence?: string;
  }>;
  usage: OpenAIUsage;
}

export interface OpenAIRenderOptions {
  /** The model id to show the client (default: the upstream's). */
  model?: string;
  /** Add the matched stop sequence to the choice (the neuron's extension, see NeuronChoiceExtensions). */
  reportStopSequence?: boolean;
}

export function renderOpenAIUsage(usage: CanonicalUsage): OpenAIUsage {
  return {
    prompt_tokens: usage.inputTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.inputTokens + usage.outputTokens,
    ...(usage.cachedInputTokens === undefined
      ? {}
      : { prompt_tokens_details: { cached_tokens: usage.cachedInputTokens } }),
  };
}

/** Canonical response → OpenAI `chat.completion` object. */
export function renderOpenAIResponse(
  res: CanonicalResponse,
  options: OpenAIRenderOptions = {},
): OpenAIChatCompletion {
  const text = res.content.flatMap((p) => (p.type === "text" ? [p.text] : [])).join("");
  const reasoning = res.content.flatMap((p) => (p.type === "thinking" ? [p.text] : [])).join("");
  const calls = res.content.flatMap((p): OpenAIToolCall[] =>
    p.type === "tool_call"
      ? [{ id: p.id, type: "function", function: { name: p.name, arguments: p.arguments } }]
      : [],
  );
  return {
    id: res.id,
    object: "chat.completion",
    created: res.created,
    model: options.model ?? res.model,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: text === "" && calls.length > 0 ? null : text,
          refusal: null,
          ...(calls.length === 0 ? {} : { tool_calls: calls }),
          ...(reasoning === "" ? {} : { reasoning_content: reasoning }),
        },
        logprobs: null,
        finish_reason: toOpenAIFinishReason(res.finishReason),
        ...(options.reportStopSequence && res.stopSequence !== undefined
          ? { stop_sequence: res.stopSequence }
          : {}),
      },
    ],
    usage: renderOpenAIUsage(res.usage),
  };
}
