/**
 * OpenAI Responses API request body (`POST /v1/responses`) → a validated
 * request plus, once the stored history is known, the canonical request.
 * Two steps because `previous_response_id` needs the response store, which
 * is the gateway's. Fields cortex cannot honour are 400s naming the field;
 * advisory ones (reasoning effort, prompt cache keys, service tier, …) are
 * accepted and documented in docs/GATEWAY.md; unknown ones are reported to
 * `onUnknownField` (the gateway logs each name once).
 */
import { z } from "zod";
import { CortexError } from "../../core/errors.ts";
import { checkStructuredOutput, RESPONSES_SCHEMA_PATHS } from "../../core/grammar/request-grammar.ts";
import type {
  AssistantMessage,
  CanonicalMessage,
  CanonicalRequest,
  CanonicalResponseFormat,
  CanonicalTool,
  CanonicalToolChoice,
  ImagePart,
  TextPart,
} from "../canonical.ts";
import { imageSourceFromUrl } from "../images.ts";
import { mergeToolMessages } from "../normalize-messages.ts";
import { jsonObject, parseOrThrow, TypedObject, unsupported } from "../zod-boundary.ts";

const Typed = z.looseObject({ type: z.string().optional() });
const Part = TypedObject;

const MessageItemSchema = z.object({
  role: z.enum(["user", "assistant", "system", "developer"]),
  content: z.union([z.string(), z.array(Part)]),
});
const InputTextSchema = z.object({ text: z.string() });
const RefusalSchema = z.object({ refusal: z.string() });
const InputImageSchema = z.object({
  image_url: z.string().min(1).nullish(),
  file_id: z.string().nullish(),
  detail: z.string().optional(),
});
const FunctionCallItemSchema = z.object({
  call_id: z.string().min(1),
  name: z.string().min(1),
  arguments: z.string(),
});
const FunctionCallOutputItemSchema = z.object({
  call_id: z.string().min(1),
  output: z.union([z.string(), z.array(Part)]),
});
const ReasoningItemSchema = z.object({
  summary: z.array(z.object({ text: z.string() })).optional(),
  content: z.array(z.object({ text: z.string() })).nullish(),
});

const FunctionToolSchema = z.object({
  type: z.literal("function"),
  name: z.string().min(1),
  description: z.string().nullish(),
  parameters: jsonObject.nullish(),
  strict: z.boolean().nullish(),
});

const ToolChoiceSchema = z.union([z.enum(["none", "auto", "required"]), Part]);
const FunctionChoiceSchema = z.object({ name: z.string().min(1) });

const TextFormatSchema = z.looseObject({ type: z.string() });
const JsonSchemaFormatSchema = z.object({
  name: z.string().min(1),
  schema: jsonObject,
  description: z.string().optional(),
  strict: z.boolean().nullish(),
});

const RequestSchema = z.object({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(Typed)]),
  instructions: z.string().nullish(),
  tools: z.array(Part).nullish(),
  tool_choice: ToolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z.looseObject({ format: TextFormatSchema.nullish(), verbosity: z.string().nullish() }).nullish(),
  max_output_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  store: z.boolean().nullish(),
  previous_response_id: z.string().min(1).nullish(),
  truncation: z.enum(["auto", "disabled"]).nullish(),
  stream: z.boolean().nullish(),
  user: z.string().nullish(),
  // Refused when set to something that changes the answer.
  background: z.boolean().nullish(),
  conversation: z.unknown().optional(),
  prompt: z.unknown().optional(),
  include: z.array(z.string()).nullish(),
  top_logprobs: z.number().int().nullish(),
  max_tool_calls: z.number().int().nullish(),
  context_management: z.unknown().optional(),
  /** `effort` goes to the model's chat template (docs/MODELS.md); `summary` is advisory. */
  reasoning: z
    .looseObject({ effort: z.enum(["none", "minimal", "low", "medium", "high", "xhigh"]).nullish() })
    .nullish(),
  // Advisory: accepted, listed in docs/GATEWAY.md.
  service_tier: z.unknown().optional(),
  prompt_cache_key: z.string().nullish(),
  prompt_cache_retention: z.unknown().optional(),
  prompt_cache_options: z.unknown().optional(),
  safety_identifier: z.unknown().optional(),
  stream_options: z.unknown().optional(),
  moderation: z.unknown().optional(),
  client_metadata: z.unknown().optional(),
});
const KNOWN_KEYS: ReadonlySet<string> = new Set(Object.keys(RequestSchema.shape));

/** One input item as stored and replayed: a loose JSON object with a `type`. */
export type ResponsesItem = Record<string, unknown> & { type: string };

/** A validated `POST /v1/responses` body; `toCanonical` makes the request once the history is known. */
export interface ResponsesRequest {
  model: string;
  /** This request's input, as items (a string input becomes one user message). */
  input: ResponsesItem[];
  instructions: string | null;
  tools: Array<z.infer<typeof FunctionToolSchema>>;
  toolChoice: string | Record<string, unknown>;
  parallelToolCalls: boolean;
  textFormat: Record<string, unknown>;
  maxOutputTokens: number | null;
  temperature: number | null;
  topP: number | null;
  metadata: Record<string, string>;
  store: boolean;
  previousResponseId: string | null;
  truncation: "auto" | "disabled";
  stream: boolean;
  user: string | undefined;
  reasoning: unknown;
  /** The canonical request for `history` (earlier items, from previous_response_id) followed by this input. */
  toCanonical(history: readonly ResponsesItem[]): CanonicalRequest;
}

export interface ParseResponsesOptions {
  /** A top-level field this parser does not know (dropped). */
  onUnknownField?: (name: string) => void;
}

export function parseResponsesRequest(body: unknown, options: ParseResponsesOptions = {}): ResponsesRequest {
  const req = parseOrThrow(RequestSchema, body, "");
  if (options.onUnknownField && typeof body === "object" && body !== null)
    for (const key of Object.keys(body)) if (!KNOWN_KEYS.has(key)) options.onUnknownField(key);
  rejectUnsupported(req);
  const input: ResponsesItem[] =
    typeof req.input === "string"
      ? [{ type: "message", role: "user", content: [{ type: "input_text", text: req.input }] }]
      : req.input.map((item, i) => normalizeItem(item, `input.${i}`));
  // Validated now, so a bad item is a 400 before any history is read.
  const messages = itemsToMessages(input, "input");
  const tools = (req.tools ?? []).map((tool, i) => {
    if (tool.type !== "function")
      throw unsupported(
        `tools.${i}.type`,
        `tool type "${tool.type}" is not supported; only "function" tools are`,
      );
    return parseOrThrow(FunctionToolSchema, tool, `tools.${i}`);
  });
  const toolChoice = req.tool_choice ?? "auto";
  const canonicalChoice = parseToolChoice(toolChoice);
  const textFormat = req.text?.format ?? { type: "text" };
  const responseFormat = parseTextFormat(textFormat);
  // What the answer must be is checked now, in this dialect's field names, before any history is read.
  checkStructuredOutput(
    {
      tools: tools.map(toCanonicalTool),
      ...(canonicalChoice === undefined ? {} : { toolChoice: canonicalChoice }),
      ...(req.parallel_tool_calls == null ? {} : { parallelToolCalls: req.parallel_tool_calls }),
      ...(responseFormat === undefined ? {} : { responseFormat }),
    },
    RESPONSES_SCHEMA_PATHS,
  );
  const parsed: ResponsesRequest = {
    model: req.model,
    input,
    instructions: req.instructions ?? null,
    tools,
    toolChoice,
    parallelToolCalls: req.parallel_tool_calls ?? true,
    textFormat,
    maxOutputTokens: req.max_output_tokens ?? null,
    temperature: req.temperature ?? null,
    topP: req.top_p ?? null,
    metadata: req.metadata ?? {},
    store: req.store ?? true,
    previousResponseId: req.previous_response_id ?? null,
    truncation: req.truncation ?? "disabled",
    stream: req.stream ?? false,
    user: req.user ?? undefined,
    reasoning: req.reasoning ?? null,
    toCanonical(history) {
      const all = history.length === 0 ? messages : [...itemsToMessages(history, "history"), ...messages];
      // Instructions are this request's own: those of earlier responses are not carried over.
      const system: CanonicalMessage[] = req.instructions
        ? [{ role: "system", content: [{ type: "text", text: req.instructions }] }]
        : [];
      const canonical: CanonicalRequest = {
        model: req.model,
        messages: mergeToolMessages([...system, ...all]),
        tools: tools.map(toCanonicalTool),
        stop: [],
        stream: req.stream ?? false,
        includeUsage: true,
      };
      if (canonicalChoice !== undefined) canonical.toolChoice = canonicalChoice;
      if (req.parallel_tool_calls != null) canonical.parallelToolCalls = req.parallel_tool_calls;
      if (req.max_output_tokens != null) canonical.maxTokens = req.max_output_tokens;
      if (req.temperature != null) canonical.temperature = req.temperature;
      if (req.top_p != null) canonical.topP = req.top_p;
      if (responseFormat !== undefined) canonical.responseFormat = responseFormat;
      if (req.reasoning?.effort != null) canonical.reasoningEffort = req.reasoning.effort;
      if (req.user != null) canonical.user = req.user;
      if (req.prompt_cache_key != null && req.prompt_cache_key !== "")
        canonical.sessionKey = req.prompt_cache_key;
      if (req.metadata != null) canonical.metadata = req.metadata;
      return canonical;
    },
  };
  return parsed;
}

type RequestBody = z.infer<typeof RequestSchema>;

function rejectUnsupported(req: RequestBody): void {
  if (req.background === true)
    throw unsupported("background", "background responses are not supported; send stream or wait");
  if (req.conversation != null)
    throw unsupported("conversation", "conversations are not supported; use previous_response_id");
  if (req.prompt != null) throw unsupported("prompt", "prompt templates are not supported");
  if (req.context_management != null)
    throw unsupported("context_management", "context management (compaction) is not supported");
  if (req.truncation === "auto")
    throw unsupported(
      "truncation",
      'truncation "auto" is not supported: a conversation longer than the context is a 400 ("disabled")',
    );
  if (req.top_logprobs != null && req.top_logprobs > 0)
    throw unsupported("top_logprobs", "logprobs are not supported");
  if (req.max_tool_calls != null) throw unsupported("max_tool_calls", "max_tool_calls is not supported");
  (req.include ?? []).forEach((value, i) => {
    // Encrypted reasoning is for stateless replays; cortex sends reasoning in the clear.
    if (value !== "reasoning.encrypted_content")
      throw unsupported(`include.${i}`, `include "${value}" is not supported`);
  });
}

/** Items the client sent, checked for shape; a message's string content stays as sent. */
function normalizeItem(item: z.infer<typeof Typed>, path: string): ResponsesItem {
  // An item without a type is a message (EasyInputMessage).
  if (item.type === undefined) {
    if (!("role" in item))
      throw new CortexError("invalid_request", `${path}: expected an item with a "type" or a "role"`, {
        param: path,
      });
    return { ...item, type: "message" };
  }
  return { ...item, type: item.type };
}

function itemsToMessages(items: readonly ResponsesItem[], path: string): CanonicalMessage[] {
  const out: CanonicalMessage[] = [];
  // Consecutive assistant-side items (reasoning, assistant text, function calls) are one turn.
  const assistant = (): AssistantMessage => {
    const last = out.at(-1);
    if (last?.role === "assistant") return last;
    const message: AssistantMessage = { role: "assistant", content: [] };
    out.push(message);
    return message;
  };
  items.forEach((item, i) => {
    const where = `${path}.${i}`;
    switch (item.type) {
      case "message": {
        const message = parseOrThrow(MessageItemSchema, item, where);
        if (message.role === "assistant") {
          assistant().content.push(...assistantText(message.content, `${where}.content`));
        } else if (message.role === "user") {
          out.push({ role: "user", content: userContent(message.content, `${where}.content`) });
        } else {
          out.push({ role: "system", content: textContent(message.content, `${where}.content`) });
        }
        break;
      }
      case "function_call": {
        const call = parseOrThrow(FunctionCallItemSchema, item, where);
        assistant().content.push({
          type: "tool_call",
          id: call.call_id,
          name: call.name,
          arguments: call.arguments,
        });
        break;
      }
      case "function_call_output": {
        const result = parseOrThrow(FunctionCallOutputItemSchema, item, where);
        out.push({
          role: "tool",
          content: [
            {
              type: "tool_result",
              toolCallId: result.call_id,
              content: userContent(result.output, `${where}.output`),
              isError: false,
            },
          ],
        });
        break;
      }
      case "reasoning": {
        const reasoning = parseOrThrow(ReasoningItemSchema, item, where);
        const text = (reasoning.content ?? reasoning.summary ?? []).map((part) => part.text).join("\n");
        if (text !== "") assistant().content.push({ type: "thinking", text });
        break;
      }
      case "item_reference":
        throw unsupported(`${where}.type`, "item references are not supported; send the item itself");
      default:
        throw unsupported(`${where}.type`, `input item type "${item.type}" is not supported`);
    }
  });
  return out;
}

function textContent(content: string | Array<z.infer<typeof Part>>, path: string): TextPart[] {
  if (typeof content === "string") return [{ type: "text", text: content }];
  return content.map((part, i) => {
    const where = `${path}.${i}`;
    if (part.type !== "input_text" && part.type !== "output_text")
      throw unsupported(`${where}.type`, `content part type "${part.type}" is not allowed here`);
    return { type: "text", text: parseOrThrow(InputTextSchema, part, where).text };
  });
}

function userContent(
  content: string | Array<z.infer<typeof Part>>,
  path: string,
): Array<TextPart | ImagePart> {
  if (typeof content === "string") return [{ type: "text", text: content }];
  return content.map((part, i): TextPart | ImagePart => {
    const where = `${path}.${i}`;
    if (part.type === "input_text")
      return { type: "text", text: parseOrThrow(InputTextSchema, part, where).text };
    if (part.type === "input_image") {
      const image = parseOrThrow(InputImageSchema, part, where);
      if (image.image_url == null)
        throw unsupported(`${where}.file_id`, "images by file_id are not supported; send image_url");
      return { type: "image", source: imageSourceFromUrl(image.image_url) };
    }
    throw unsupported(`${where}.type`, `content part type "${part.type}" is not supported`);
  });
}

function assistantText(content: string | Array<z.infer<typeof Part>>, path: string): TextPart[] {
  if (typeof content === "string") return content === "" ? [] : [{ type: "text", text: content }];
  return content.map((part, i) => {
    const where = `${path}.${i}`;
    if (part.type === "refusal")
      return { type: "text", text: parseOrThrow(RefusalSchema, part, where).refusal };
    if (part.type !== "output_text" && part.type !== "input_text")
      throw unsupported(
        `${where}.type`,
        `content part type "${part.type}" is not allowed in an assistant message`,
      );
    return { type: "text", text: parseOrThrow(InputTextSchema, part, where).text };
  });
}

function toCanonicalTool(tool: z.infer<typeof FunctionToolSchema>): CanonicalTool {
  const out: CanonicalTool = {
    name: tool.name,
    parameters: tool.parameters ?? { type: "object", properties: {} },
  };
  if (tool.description != null) out.description = tool.description;
  if (tool.strict != null) out.strict = tool.strict;
  return out;
}

function parseToolChoice(choice: string | z.infer<typeof Part>): CanonicalToolChoice | undefined {
  if (choice === "none") return { type: "none" };
  if (choice === "auto") return { type: "auto" };
  if (choice === "required") return { type: "any" };
  if (typeof choice === "string") return undefined;
  if (choice.type === "function")
    return { type: "tool", name: parseOrThrow(FunctionChoiceSchema, choice, "tool_choice").name };
  throw unsupported("tool_choice", `tool_choice type "${choice.type}" is not supported`);
}

function parseTextFormat(format: z.infer<typeof TextFormatSchema>): CanonicalResponseFormat | undefined {
  switch (format.type) {
    case "text":
      return undefined;
    case "json_object":
      return { type: "json_object" };
    case "json_schema": {
      const js = parseOrThrow(JsonSchemaFormatSchema, format, "text.format");
      return {
        type: "json_schema",
        name: js.name,
        schema: js.schema,
        ...(js.description === undefined ? {} : { description: js.description }),
        ...(js.strict == null ? {} : { strict: js.strict }),
      };
    }
    default:
      throw unsupported("text.format", `text.format type "${format.type}" is not supported`);
  }
}
