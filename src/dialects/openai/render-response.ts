import type { CanonicalResponse, CanonicalUsage } from "../canonical.ts";
import { toOpenAIFinishReason } from "../map-openai-finish-reason.ts";

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
  completion_tokens_details?: { reasoning_tokens: number };
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
  const rendered: OpenAIUsage = {
    prompt_tokens: usage.inputTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.inputTokens + usage.outputTokens,
  };
  if (usage.cachedInputTokens !== undefined)
    rendered.prompt_tokens_details = { cached_tokens: usage.cachedInputTokens };
  if (usage.reasoningTokens !== undefined)
    rendered.completion_tokens_details = { reasoning_tokens: usage.reasoningTokens };
  return rendered;
}

type OpenAIChoice = OpenAIChatCompletion["choices"][number];

/** Canonical response → OpenAI `chat.completion` object. */
export function renderOpenAIResponse(
  res: CanonicalResponse,
  options: OpenAIRenderOptions = {},
): OpenAIChatCompletion {
  // One pass, and optional keys assigned rather than spread (this runs per request).
  let text = "";
  let reasoning = "";
  let calls: OpenAIToolCall[] | undefined;
  for (const part of res.content) {
    if (part.type === "text") text += part.text;
    else if (part.type === "thinking") reasoning += part.text;
    else {
      calls ??= [];
      calls.push({ id: part.id, type: "function", function: { name: part.name, arguments: part.arguments } });
    }
  }
  const message: OpenAIChoice["message"] = {
    role: "assistant",
    content: text === "" && calls !== undefined ? null : text,
    refusal: null,
  };
  if (calls !== undefined) message.tool_calls = calls;
  if (reasoning !== "") message.reasoning_content = reasoning;
  const choice: OpenAIChoice = {
    index: 0,
    message,
    logprobs: null,
    finish_reason: toOpenAIFinishReason(res.finishReason),
  };
  if (options.reportStopSequence && res.stopSequence !== undefined) choice.stop_sequence = res.stopSequence;
  return {
    id: res.id,
    object: "chat.completion",
    created: res.created,
    model: options.model ?? res.model,
    choices: [choice],
    usage: renderOpenAIUsage(res.usage),
  };
}
