/**
 * OpenAI Chat Completions request body → canonical request. Validates what
 * it reads (partial zod schemas) and refuses, with a 400 naming the field,
 * anything the fleet cannot honour; fields that do not change the answer
 * (store, service_tier, prediction, …) are ignored.
 */
import { z } from "zod";
import { CortexError } from "../../core/errors.ts";
import { checkStructuredOutput, OPENAI_SCHEMA_PATHS } from "../../core/grammar/request-grammar.ts";
import { isJsonObject } from "../../core/json-object.ts";
import type {
  AssistantMessage,
  CanonicalMessage,
  CanonicalRequest,
  CanonicalResponseFormat,
  CanonicalTool,
  CanonicalToolChoice,
  ImagePart,
  TextPart,
  ToolCallPart,
} from "../canonical.ts";
import { imageSourceFromUrl } from "../images.ts";
import { mergeToolMessages } from "../normalize-messages.ts";
import { isTypedObject, jsonObject, parseOrThrow, TypedObject, unsupported } from "../zod-boundary.ts";

const Part = TypedObject;
const TextPartSchema = z.object({ type: z.literal("text"), text: z.string() });
const RefusalPartSchema = z.object({ type: z.literal("refusal"), refusal: z.string() });
const ImageUrlPartSchema = z.object({
  type: z.literal("image_url"),
  image_url: z.object({ url: z.string().min(1), detail: z.string().optional() }),
});
const Content = z.union([z.string(), z.array(Part)]).nullish();

const ToolCallSchema = z.object({
  id: z.string(),
  type: z.literal("function").optional(),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

export const MessageSchema = z.object({
  role: z.string(),
  content: Content,
  tool_calls: z.array(ToolCallSchema).nullish(),
  tool_call_id: z.string().optional(),
  function_call: z.unknown().optional(),
  /** An earlier answer's reasoning (the DeepSeek / vLLM / llama-server convention). */
  reasoning_content: z.string().nullish(),
});

export const FunctionToolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: jsonObject.optional(),
    strict: z.boolean().nullish(),
  }),
});

const ToolChoiceSchema = z.union([z.enum(["none", "auto", "required"]), z.looseObject({ type: z.string() })]);
const NamedToolChoiceSchema = z.object({ function: z.object({ name: z.string() }) });

const ResponseFormatSchema = z.looseObject({ type: z.string() });
const JsonSchemaFormatSchema = z.object({
  json_schema: z.object({
    name: z.string(),
    description: z.string().optional(),
    schema: jsonObject.optional(),
    strict: z.boolean().nullish(),
  }),
});

// What nearly every request carries. A body with no other key is checked against these
// alone: zod runs every declared field's parser, present or not, and the full list is
// four times as long (the parse was ~5 % of the gateway's time per request).
const CommonFields = {
  model: z.string().min(1),
  messages: z.array(MessageSchema).min(1, "expected at least one message"),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
};
const COMMON_KEYS: ReadonlySet<string> = new Set(Object.keys(CommonFields));
const CommonRequestSchema = z.object(CommonFields);
/** For messages plainMessages vouched for: zod checks the rest of the request. */
const VouchedMessages = { messages: z.array(z.unknown()).min(1, "expected at least one message") };

const RequestSchema = z.object({
  ...CommonFields,
  tools: z.array(Part).nullish(),
  tool_choice: ToolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: ResponseFormatSchema.nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  seed: z.number().int().nullish(),
  top_k: z.number().int().nonnegative().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  user: z.string().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  prompt_cache_key: z.string().nullish(),
  n: z.number().int().positive().nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().nullish(),
  modalities: z.array(z.string()).nullish(),
  audio: z.unknown().optional(),
  functions: z.unknown().optional(),
  function_call: z.unknown().optional(),
  web_search_options: z.unknown().optional(),
  reasoning_effort: z.enum(["none", "minimal", "low", "medium", "high", "xhigh"]).nullish(),
  chat_template_kwargs: jsonObject.nullish(),
});
type RequestBody = z.infer<typeof RequestSchema>;
/** Each body schema, and the same one for messages plainMessages vouched for. */
const COMMON = { checked: CommonRequestSchema, vouched: CommonRequestSchema.extend(VouchedMessages) };
const FULL = { checked: RequestSchema, vouched: RequestSchema.extend(VouchedMessages) };

/**
 * Whether every message has a shape MessageSchema accepts, checked by hand
 * (as the gateway reads a neuron's answers): zod's parse of an agent's
 * history, dozens of messages resent every turn, was the largest part of
 * reading its request. A message this does not vouch for is left to zod,
 * whose messages say what is wrong; it never vouches for one zod refuses
 * (tests/unit/dialects/openai-message-shapes.test.ts).
 */
export function plainMessages(messages: unknown): boolean {
  if (!Array.isArray(messages) || messages.length === 0) return false;
  for (const message of messages) if (!plainMessage(message)) return false;
  return true;
}

function plainMessage(m: unknown): boolean {
  if (!isJsonObject(m) || typeof m.role !== "string") return false;
  const content = m.content;
  if (
    !(
      content == null ||
      typeof content === "string" ||
      (Array.isArray(content) && content.every(isTypedObject))
    )
  )
    return false;
  const calls = m.tool_calls;
  if (!(calls == null || (Array.isArray(calls) && calls.every(toolCall)))) return false;
  if (!(m.tool_call_id === undefined || typeof m.tool_call_id === "string")) return false;
  return m.reasoning_content == null || typeof m.reasoning_content === "string";
}

/** A function tool FunctionToolSchema accepts (see plainMessages). */
export function plainFunctionTool(tool: unknown): boolean {
  if (!isJsonObject(tool) || tool.type !== "function" || !isJsonObject(tool.function)) return false;
  const { name, description, parameters, strict } = tool.function;
  return (
    typeof name === "string" &&
    name.length > 0 &&
    (description === undefined || typeof description === "string") &&
    (parameters === undefined || isJsonObject(parameters)) &&
    (strict == null || typeof strict === "boolean")
  );
}

function toolCall(call: unknown): boolean {
  if (!isJsonObject(call) || typeof call.id !== "string") return false;
  if (!(call.type === undefined || call.type === "function")) return false;
  const fn = call.function;
  return isJsonObject(fn) && typeof fn.name === "string" && typeof fn.arguments === "string";
}

function onlyCommonKeys(body: unknown): boolean {
  if (!isJsonObject(body)) return false;
  for (const key in body) if (!COMMON_KEYS.has(key)) return false;
  return true;
}

export function parseOpenAIRequest(body: unknown): CanonicalRequest {
  const schemas = onlyCommonKeys(body) ? COMMON : FULL;
  const schema = isJsonObject(body) && plainMessages(body.messages) ? schemas.vouched : schemas.checked;
  // Vouched messages are read as sent: parseMessage reads no key that zod would have stripped.
  const req = parseOrThrow(schema, body, "") as RequestBody;
  rejectUnsupported(req);
  const stop = req.stop == null ? [] : typeof req.stop === "string" ? [req.stop] : req.stop;
  const maxTokens = req.max_completion_tokens ?? req.max_tokens ?? undefined;
  const toolChoice = req.tool_choice == null ? undefined : parseToolChoice(req.tool_choice);
  const responseFormat = req.response_format == null ? undefined : parseResponseFormat(req.response_format);
  // Assigned field by field: spreading each optional field showed in the gateway's profile.
  const canonical: CanonicalRequest = {
    model: req.model,
    messages: mergeToolMessages(req.messages.map((m, i) => parseMessage(m, `messages.${i}`))),
    tools: req.tools == null ? [] : req.tools.map((t, i) => parseTool(t, `tools.${i}`)),
    stop,
    stream: req.stream ?? false,
    includeUsage: req.stream_options?.include_usage ?? false,
  };
  if (toolChoice !== undefined) canonical.toolChoice = toolChoice;
  if (req.parallel_tool_calls != null) canonical.parallelToolCalls = req.parallel_tool_calls;
  if (maxTokens !== undefined) canonical.maxTokens = maxTokens;
  if (req.temperature != null) canonical.temperature = req.temperature;
  if (req.top_p != null) canonical.topP = req.top_p;
  if (req.top_k != null) canonical.topK = req.top_k;
  if (req.seed != null) canonical.seed = req.seed;
  if (req.presence_penalty != null) canonical.presencePenalty = req.presence_penalty;
  if (req.frequency_penalty != null) canonical.frequencyPenalty = req.frequency_penalty;
  if (req.logit_bias != null) canonical.logitBias = req.logit_bias;
  if (responseFormat !== undefined) canonical.responseFormat = responseFormat;
  if (req.reasoning_effort != null) canonical.reasoningEffort = req.reasoning_effort;
  if (req.chat_template_kwargs != null && Object.keys(req.chat_template_kwargs).length > 0)
    canonical.templateKwargs = req.chat_template_kwargs;
  if (req.user != null) canonical.user = req.user;
  if (req.prompt_cache_key != null && req.prompt_cache_key !== "")
    canonical.sessionKey = req.prompt_cache_key;
  if (req.metadata != null) canonical.metadata = req.metadata;
  checkStructuredOutput(canonical, OPENAI_SCHEMA_PATHS);
  return canonical;
}

function rejectUnsupported(req: RequestBody): void {
  if (req.n != null && req.n > 1)
    throw unsupported("n", "n > 1 is not supported; send one request per choice");
  if (req.logprobs === true) throw unsupported("logprobs", "logprobs are not supported");
  if (req.top_logprobs != null && req.top_logprobs > 0)
    throw unsupported("top_logprobs", "top_logprobs are not supported");
  if (req.modalities?.some((m) => m !== "text"))
    throw unsupported("modalities", "only the text output modality is supported");
  if (req.audio != null) throw unsupported("audio", "audio output is not supported");
  if (req.functions != null) throw unsupported("functions", "`functions` is deprecated; use `tools`");
  if (req.function_call != null)
    throw unsupported("function_call", "`function_call` is deprecated; use `tool_choice`");
  if (req.web_search_options != null) throw unsupported("web_search_options", "web search is not supported");
}

function parseMessage(m: z.infer<typeof MessageSchema>, path: string): CanonicalMessage {
  switch (m.role) {
    case "system":
    case "developer":
      return {
        role: "system",
        content: parseTextContent(m.content, `${path}.content`),
        ...(oneTextPartList(m.content) ? { asParts: true as const } : {}),
      };
    case "user":
      return {
        role: "user",
        content: parseUserContent(m.content, `${path}.content`),
        ...(oneTextPartList(m.content) ? { asParts: true as const } : {}),
      };
    case "assistant":
      return parseAssistant(m, path);
    case "tool": {
      if (m.tool_call_id === undefined)
        throw new CortexError("invalid_request", `${path}.tool_call_id: required for role "tool"`, {
          param: `${path}.tool_call_id`,
        });
      return {
        role: "tool",
        content: [
          {
            type: "tool_result",
            toolCallId: m.tool_call_id,
            content: parseUserContent(m.content, `${path}.content`),
            isError: false,
          },
        ],
      };
    }
    case "function":
      throw unsupported(`${path}.role`, 'role "function" is deprecated; use tool messages');
    default:
      throw new CortexError("invalid_request", `${path}.role: unknown role ${JSON.stringify(m.role)}`, {
        param: `${path}.role`,
      });
  }
}

function parseAssistant(m: z.infer<typeof MessageSchema>, path: string): AssistantMessage {
  if (m.function_call != null)
    throw unsupported(`${path}.function_call`, "`function_call` is deprecated; use `tool_calls`");
  const content: AssistantMessage["content"] = [];
  if (m.reasoning_content != null && m.reasoning_content !== "")
    content.push({ type: "thinking", text: m.reasoning_content });
  if (typeof m.content === "string") {
    if (m.content !== "") content.push({ type: "text", text: m.content });
  } else if (m.content != null) {
    m.content.forEach((part, i) => {
      const where = `${path}.content.${i}`;
      if (part.type === "refusal") {
        content.push({ type: "text", text: parseOrThrow(RefusalPartSchema, part, where).refusal });
      } else {
        content.push(parseTextPart(part, where));
      }
    });
  }
  for (const call of m.tool_calls ?? []) {
    const part: ToolCallPart = {
      type: "tool_call",
      id: call.id,
      name: call.function.name,
      arguments: call.function.arguments,
    };
    content.push(part);
  }
  return { role: "assistant", content };
}

/** One text part sent as a list (canonical `asParts`: a string would read the same). */
function oneTextPartList(content: z.infer<typeof Content>): boolean {
  return Array.isArray(content) && content.length === 1 && content[0]?.type === "text";
}

function parseTextContent(content: z.infer<typeof Content>, path: string): TextPart[] {
  if (content == null) return [];
  if (typeof content === "string") return [{ type: "text", text: content }];
  return content.map((part, i) => parseTextPart(part, `${path}.${i}`));
}

function parseTextPart(part: z.infer<typeof Part>, path: string): TextPart {
  if (part.type !== "text")
    throw unsupported(`${path}.type`, `content part type "${part.type}" is not allowed here`);
  return { type: "text", text: parseOrThrow(TextPartSchema, part, path).text };
}

function parseUserContent(content: z.infer<typeof Content>, path: string): Array<TextPart | ImagePart> {
  if (content == null) return [];
  if (typeof content === "string") return [{ type: "text", text: content }];
  return content.map((part, i): TextPart | ImagePart => {
    const where = `${path}.${i}`;
    if (part.type === "image_url") {
      const image = parseOrThrow(ImageUrlPartSchema, part, where);
      return { type: "image", source: imageSourceFromUrl(image.image_url.url) };
    }
    if (part.type === "text") return parseTextPart(part, where);
    throw unsupported(`${where}.type`, `content part type "${part.type}" is not supported`);
  });
}

function parseTool(tool: z.infer<typeof Part>, path: string): CanonicalTool {
  if (tool.type !== "function")
    throw unsupported(`${path}.type`, `tool type "${tool.type}" is not supported`);
  // An agent sends all its tools every turn: the usual shape is checked by hand, anything else by zod.
  const fn = plainFunctionTool(tool)
    ? (tool.function as z.infer<typeof FunctionToolSchema>["function"])
    : parseOrThrow(FunctionToolSchema, tool, path).function;
  return {
    name: fn.name,
    ...(fn.description === undefined ? {} : { description: fn.description }),
    parameters: fn.parameters ?? { type: "object", properties: {} },
    ...(fn.strict == null ? {} : { strict: fn.strict }),
  };
}

function parseToolChoice(choice: z.infer<typeof ToolChoiceSchema>): CanonicalToolChoice {
  if (choice === "none") return { type: "none" };
  if (choice === "auto") return { type: "auto" };
  if (choice === "required") return { type: "any" };
  if (choice.type === "function") {
    return { type: "tool", name: parseOrThrow(NamedToolChoiceSchema, choice, "tool_choice").function.name };
  }
  throw unsupported("tool_choice", `tool_choice type "${choice.type}" is not supported`);
}

function parseResponseFormat(format: z.infer<typeof ResponseFormatSchema>): CanonicalResponseFormat {
  switch (format.type) {
    case "text":
      return { type: "text" };
    case "json_object":
      return { type: "json_object" };
    case "json_schema": {
      const { json_schema: js } = parseOrThrow(JsonSchemaFormatSchema, format, "response_format");
      return {
        type: "json_schema",
        name: js.name,
        schema: js.schema ?? {},
        ...(js.description === undefined ? {} : { description: js.description }),
        ...(js.strict == null ? {} : { strict: js.strict }),
      };
    }
    default:
      throw unsupported("response_format", `response_format type "${format.type}" is not supported`);
  }
}
