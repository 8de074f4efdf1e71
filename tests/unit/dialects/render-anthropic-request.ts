/**
 * Canonical request → Anthropic Messages body: what an Anthropic client
 * would have sent for the same conversation. Settings Anthropic cannot
 * express (seed, penalties, logit bias, json_object) are left out.
 * The product never sends one (it speaks OpenAI to the neurons); the
 * round-trip tests render with it.
 */
import { toolInputFromArguments } from "../../../src/dialects/anthropic/tool-input.ts";
import {
  assertNever,
  type CanonicalRequest,
  type ImagePart,
  type ImageSource,
  type TextPart,
} from "../../../src/dialects/canonical.ts";

type AnthropicImageSource =
  | { type: "base64"; media_type: string; data: string }
  | { type: "url"; url: string };

function toAnthropicImageSource(source: ImageSource): AnthropicImageSource {
  return source.kind === "url"
    ? { type: "url", url: source.url }
    : { type: "base64", media_type: source.mediaType, data: source.data };
}

type AnthropicContentBlockParam =
  | { type: "text"; text: string }
  | { type: "image"; source: AnthropicImageSource }
  | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> }
  | {
      type: "tool_result";
      tool_use_id: string;
      content: Array<{ type: "text"; text: string } | { type: "image"; source: AnthropicImageSource }>;
      is_error?: boolean;
    };

export interface AnthropicMessagesBody {
  model: string;
  max_tokens?: number;
  system?: string | Array<{ type: "text"; text: string }>;
  messages: Array<{ role: "user" | "assistant"; content: string | AnthropicContentBlockParam[] }>;
  tools?: Array<{
    name: string;
    description?: string;
    input_schema: Record<string, unknown>;
    strict?: boolean;
  }>;
  tool_choice?:
    | { type: "auto" | "any"; disable_parallel_tool_use?: boolean }
    | { type: "none" }
    | { type: "tool"; name: string; disable_parallel_tool_use?: boolean };
  stop_sequences?: string[];
  temperature?: number;
  top_p?: number;
  top_k?: number;
  metadata?: { user_id: string };
  output_config?: { format: { type: "json_schema"; schema: Record<string, unknown> } };
  stream?: boolean;
}

function blocks(
  parts: Array<TextPart | ImagePart>,
): Array<Extract<AnthropicContentBlockParam, { type: "text" | "image" }>> {
  return parts.map((p) =>
    p.type === "text"
      ? { type: "text", text: p.text }
      : { type: "image", source: toAnthropicImageSource(p.source) },
  );
}

export function renderAnthropicRequest(req: CanonicalRequest): AnthropicMessagesBody {
  const system: TextPart[] = [];
  const messages: AnthropicMessagesBody["messages"] = [];
  const push = (role: "user" | "assistant", content: AnthropicContentBlockParam[]) => {
    const last = messages.at(-1);
    // Tool results and the user's next words share one user turn, as Anthropic clients send them.
    if (role === "user" && last?.role === "user" && Array.isArray(last.content))
      last.content.push(...content);
    else messages.push({ role, content });
  };
  for (const message of req.messages) {
    switch (message.role) {
      case "system":
        system.push(...message.content);
        break;
      case "user":
        push("user", blocks(message.content));
        break;
      case "assistant":
        push(
          "assistant",
          message.content.flatMap((p): AnthropicContentBlockParam[] => {
            if (p.type === "text") return [{ type: "text", text: p.text }];
            if (p.type === "tool_call")
              return [
                { type: "tool_use", id: p.id, name: p.name, input: toolInputFromArguments(p.arguments) },
              ];
            return [];
          }),
        );
        break;
      case "tool":
        push(
          "user",
          message.content.map((r) => ({
            type: "tool_result" as const,
            tool_use_id: r.toolCallId,
            content: blocks(r.content),
            ...(r.isError ? { is_error: true } : {}),
          })),
        );
        break;
      default:
        assertNever(message, "message");
    }
  }
  const noParallel = req.parallelToolCalls === false ? { disable_parallel_tool_use: true } : {};
  const choice = req.toolChoice;
  return {
    model: req.model,
    ...(req.maxTokens === undefined ? {} : { max_tokens: req.maxTokens }),
    ...(system.length === 0 ? {} : { system: system.map((t) => ({ type: "text" as const, text: t.text })) }),
    messages,
    ...(req.tools.length === 0
      ? {}
      : {
          tools: req.tools.map((t) => ({
            name: t.name,
            ...(t.description === undefined ? {} : { description: t.description }),
            input_schema: t.parameters,
            ...(t.strict === undefined ? {} : { strict: t.strict }),
          })),
        }),
    ...(choice === undefined
      ? {}
      : {
          tool_choice:
            choice.type === "none"
              ? { type: "none" }
              : choice.type === "tool"
                ? { type: "tool", name: choice.name, ...noParallel }
                : { type: choice.type, ...noParallel },
        }),
    ...(req.stop.length === 0 ? {} : { stop_sequences: req.stop }),
    ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
    ...(req.topP === undefined ? {} : { top_p: req.topP }),
    ...(req.topK === undefined ? {} : { top_k: req.topK }),
    ...(req.user === undefined ? {} : { metadata: { user_id: req.user } }),
    ...(req.responseFormat?.type === "json_schema"
      ? { output_config: { format: { type: "json_schema" as const, schema: req.responseFormat.schema } } }
      : {}),
    stream: req.stream,
  };
}
