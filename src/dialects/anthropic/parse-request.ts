/**
 * Anthropic Messages request body → canonical request. Fields that do not
 * change the answer (cache_control, service_tier, container,
 * context_management, …) are accepted and ignored as the real API would
 * accept them; content the fleet cannot read (documents, server-tool
 * results) is refused with invalid_request_error rather than silently
 * dropped from the prompt.
 */

import { consola } from "consola";
import { z } from "zod";
import { CortexError } from "../../core/errors.ts";
import { ANTHROPIC_SCHEMA_PATHS, checkStructuredOutput } from "../../core/grammar/request-grammar.ts";
import { isJsonObject } from "../../core/json-object.ts";
import type {
  AssistantMessage,
  CanonicalMessage,
  CanonicalRequest,
  CanonicalResponseFormat,
  CanonicalTool,
  CanonicalToolChoice,
  ImagePart,
  ReasoningEffort,
  TextPart,
  ToolResultPart,
} from "../canonical.ts";
import { mergeToolMessages } from "../normalize-messages.ts";
import { isTypedObject, jsonObject, parseOrThrow, TypedObject } from "../zod-boundary.ts";
import { isBillingHeaderBlock } from "./billing-header.ts";

const Block = TypedObject;
const TextBlock = z.object({ type: z.literal("text"), text: z.string() });
const ThinkingBlock = z.looseObject({ type: z.literal("thinking"), thinking: z.string() });
const ImageBlock = z.object({
  type: z.literal("image"),
  source: z.union([
    z.object({ type: z.literal("base64"), media_type: z.string(), data: z.string() }),
    z.object({ type: z.literal("url"), url: z.string() }),
  ]),
});
export const ToolUseBlock = z.object({
  type: z.literal("tool_use"),
  id: z.string(),
  name: z.string(),
  input: jsonObject,
});
export const ToolResultBlock = z.object({
  type: z.literal("tool_result"),
  tool_use_id: z.string(),
  content: z.union([z.string(), z.array(Block)]).optional(),
  is_error: z.boolean().optional(),
});

export const MessageSchema = z.looseObject({
  role: z.enum(["user", "assistant", "system"]),
  content: z.union([z.string(), z.array(Block)]),
});

const ToolSchema = z.looseObject({
  type: z.string().nullish(),
  name: z.string().min(1),
  description: z.string().optional(),
  input_schema: jsonObject.optional(),
  strict: z.boolean().optional(),
});

const ToolChoiceSchema = z.looseObject({
  type: z.enum(["auto", "any", "tool", "none"]),
  name: z.string().optional(),
  disable_parallel_tool_use: z.boolean().optional(),
});

const JsonOutputFormat = z.looseObject({
  type: z.literal("json_schema"),
  schema: jsonObject,
});

const CommonSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(MessageSchema).min(1, "expected at least one message"),
  system: z.union([z.string(), z.array(Block)]).optional(),
  tools: z.array(ToolSchema).optional(),
  tool_choice: ToolChoiceSchema.optional(),
  output_config: z
    .looseObject({
      format: JsonOutputFormat.nullish(),
      effort: z.enum(["low", "medium", "high", "max"]).nullish(),
    })
    .optional(),
  thinking: z
    .looseObject({
      type: z.enum(["enabled", "disabled", "adaptive"]),
      budget_tokens: z.number().int().nonnegative().optional(),
    })
    .nullish(),
  /** The structured-outputs beta spelling of output_config.format. */
  output_format: JsonOutputFormat.nullish(),
  mcp_servers: z.array(z.unknown()).optional(),
});

const MessagesSchema = CommonSchema.extend({
  max_tokens: z.number().int().positive(),
  stop_sequences: z.array(z.string()).optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().nonnegative().optional(),
  metadata: z.looseObject({ user_id: z.string().nullish() }).optional(),
  stream: z.boolean().optional(),
  /** The message-threads beta: resolved by the gateway before parsing (see threadUnsupported). */
  thread: z.unknown().optional(),
});

/** For messages plainMessages vouched for: zod checks the rest of the request. */
const VouchedMessages = { messages: z.array(z.unknown()).min(1, "expected at least one message") };
const VouchedMessagesSchema = MessagesSchema.extend(VouchedMessages);
const VouchedCommonSchema = CommonSchema.extend(VouchedMessages);
const ROLES: ReadonlySet<unknown> = new Set(MessageSchema.shape.role.options);

/**
 * Whether every message has a shape MessageSchema accepts, checked by hand:
 * zod's parse of an agent's history, resent every turn, was the largest part
 * of reading its request. A message this does not vouch for is left to zod,
 * whose messages say what is wrong; it vouches for exactly what zod accepts
 * (tests/unit/dialects/anthropic-message-shapes.test.ts). The blocks are read one by
 * one below, as before.
 */
export function plainMessages(messages: unknown): boolean {
  if (!Array.isArray(messages) || messages.length === 0) return false;
  for (const m of messages) {
    if (!isJsonObject(m) || !ROLES.has(m.role)) return false;
    const content = m.content;
    if (typeof content !== "string" && !(Array.isArray(content) && content.every(isTypedObject)))
      return false;
  }
  return true;
}

/** The body's schema: its messages left out of zod's parse when plainMessages vouched for them. */
function vouched<T extends z.ZodType>(body: unknown, schema: T, lighter: z.ZodType): T {
  // The vouched messages are read as sent: looseObject kept every key of them anyway.
  return isJsonObject(body) && plainMessages(body.messages) ? (lighter as unknown as T) : schema;
}

/** A tool_use block ToolUseBlock accepts (its type already read), checked by hand as plainMessages does. */
export function plainToolUse(block: Record<string, unknown>): block is z.infer<typeof ToolUseBlock> {
  return typeof block.id === "string" && typeof block.name === "string" && isJsonObject(block.input);
}

/** A tool_result block ToolResultBlock accepts (its type already read), checked by hand as plainMessages does. */
export function plainToolResult(block: Record<string, unknown>): block is z.infer<typeof ToolResultBlock> {
  const content = block.content;
  return (
    typeof block.tool_use_id === "string" &&
    (content === undefined ||
      typeof content === "string" ||
      (Array.isArray(content) && content.every(isTypedObject))) &&
    (block.is_error === undefined || typeof block.is_error === "boolean")
  );
}

/** A text block's text (its type already read as "text"); zod names the problem when it is not a string. */
function blockText(block: z.infer<typeof Block>, path: string): string {
  return typeof block.text === "string" ? block.text : parseOrThrow(TextBlock, block, path).text;
}

export interface AnthropicParseOptions {
  /** Told about every accepted-but-ignored setting that a user might miss (default: consola.warn). */
  onWarning?: (message: string) => void;
  /** Keep Claude Code's per-request billing block in `system` (billing-header.ts); default: drop it. */
  keepBillingHeader?: boolean;
  /** Told each time a billing block is dropped (metrics, debug log). */
  onBillingHeaderDropped?: () => void;
}

/** `POST /v1/messages` body → canonical request. Throws CortexError (400) on what it cannot honour. */
export function parseAnthropicRequest(body: unknown, options: AnthropicParseOptions = {}): CanonicalRequest {
  const req = parseOrThrow(vouched(body, MessagesSchema, VouchedMessagesSchema), body, "");
  if (req.thread !== undefined && req.thread !== null) throw threadUnsupported();
  const common = parseCommon(req, options);
  return {
    ...common,
    maxTokens: req.max_tokens,
    ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
    ...(req.top_p === undefined ? {} : { topP: req.top_p }),
    ...(req.top_k === undefined ? {} : { topK: req.top_k }),
    stop: req.stop_sequences ?? [],
    stream: req.stream ?? false,
    // Anthropic streams always carry usage.
    includeUsage: req.stream ?? false,
    ...(req.metadata?.user_id == null ? {} : { user: req.metadata.user_id }),
    ...sessionOf(req.metadata?.user_id),
  };
}

/** `POST /v1/messages/count_tokens` body → the canonical request whose prompt the neuron counts. */
export function parseAnthropicCountTokensRequest(
  body: unknown,
  options: AnthropicParseOptions = {},
): CanonicalRequest {
  return {
    ...parseCommon(parseOrThrow(vouched(body, CommonSchema, VouchedCommonSchema), body, ""), options),
    stop: [],
    stream: false,
    includeUsage: false,
  };
}

/** The `count_tokens` answer body. */
export function renderAnthropicCountTokensResponse(inputTokens: number): { input_tokens: number } {
  return { input_tokens: inputTokens };
}

type Common = Pick<
  CanonicalRequest,
  | "model"
  | "messages"
  | "tools"
  | "toolChoice"
  | "parallelToolCalls"
  | "responseFormat"
  | "reasoningEffort"
  | "thinking"
>;

/**
 * `thinking` and `output_config.effort` → how hard the model reasons: disabled
 * is none; enabled takes the effort, or one from its token budget.
 */
function reasoningEffort(req: z.infer<typeof CommonSchema>): ReasoningEffort | undefined {
  const effort = req.output_config?.effort ?? undefined;
  const mapped = effort === "max" ? "xhigh" : effort;
  const thinking = req.thinking ?? undefined;
  if (thinking?.type === "disabled") return "none";
  if (thinking === undefined || mapped !== undefined) return mapped;
  const budget = thinking.budget_tokens;
  if (budget === undefined) return "medium";
  return budget <= 4096 ? "low" : budget <= 16384 ? "medium" : "high";
}

function parseCommon(req: z.infer<typeof CommonSchema>, options: AnthropicParseOptions): Common {
  const warn = options.onWarning ?? ((message: string) => consola.warn(`anthropic request: ${message}`));
  if (req.mcp_servers !== undefined && req.mcp_servers.length > 0) {
    throw invalid("mcp_servers", "MCP servers run by the API are not supported; connect them in the client");
  }
  const system: TextPart[] =
    req.system === undefined ? [] : withoutBillingHeader(parseSystem(req.system, "system"), options);
  const messages: CanonicalMessage[] = [];
  req.messages.forEach((m, i) => {
    const path = `messages.${i}`;
    if (m.role === "system") {
      // Claude Code sends reminders as role "system" messages. Those before the conversation are the system
      // prompt. A later one stays where it is, as user text: folding it into the system prompt would change
      // the prompt's start each time one is added, so no turn could reuse the KV cache of the one before.
      // It joins the user turn it follows (roles keep alternating), which depends only on what came before.
      const parts = parseSystem(m.content, `${path}.content`);
      const last = messages.at(-1);
      if (messages.length === 0) system.push(...parts);
      else if (last?.role === "user")
        messages[messages.length - 1] = { role: "user", content: [...last.content, ...parts] };
      else messages.push({ role: "user", content: parts });
    } else if (m.role === "user") {
      messages.push(...parseUserContent(m.content, `${path}.content`));
    } else {
      const assistant = parseAssistantContent(m.content, `${path}.content`);
      if (assistant.content.length > 0) messages.push(assistant);
    }
  });
  const tools = (req.tools ?? []).flatMap((t, i) => parseTool(t, `tools.${i}`, warn));
  const format = req.output_config?.format ?? req.output_format ?? undefined;
  const responseFormat: CanonicalResponseFormat | undefined = format
    ? { type: "json_schema", name: "response", schema: format.schema, strict: true }
    : undefined;
  const toolChoice = req.tool_choice === undefined ? undefined : parseToolChoice(req.tool_choice);
  const common: Common = {
    model: req.model,
    messages: mergeToolMessages([
      ...(system.length > 0 ? [{ role: "system" as const, content: system }] : []),
      ...messages,
    ]),
    tools,
    ...(toolChoice === undefined ? {} : { toolChoice }),
    ...(req.tool_choice?.disable_parallel_tool_use === true ? { parallelToolCalls: false } : {}),
    ...(responseFormat === undefined ? {} : { responseFormat }),
  };
  const effort = reasoningEffort(req);
  if (effort !== undefined) common.reasoningEffort = effort;
  if (req.thinking?.type === "enabled" || req.thinking?.type === "adaptive") common.thinking = true;
  checkStructuredOutput(common, ANTHROPIC_SCHEMA_PATHS);
  return common;
}

/** Claude Code's `metadata.user_id` is JSON with a `session_id`: the conversation's own name. */
function sessionOf(userId: string | null | undefined): { sessionKey?: string } {
  if (userId == null || !userId.startsWith("{")) return {};
  try {
    const parsed = JSON.parse(userId) as { session_id?: unknown };
    return typeof parsed.session_id === "string" && parsed.session_id !== ""
      ? { sessionKey: parsed.session_id }
      : {};
  } catch {
    return {};
  }
}

function withoutBillingHeader(system: TextPart[], options: AnthropicParseOptions): TextPart[] {
  if (options.keepBillingHeader) return system;
  return system.filter((part) => {
    if (!isBillingHeaderBlock(part.text)) return true;
    options.onBillingHeaderDropped?.();
    return false;
  });
}

/**
 * The gateway resolves a `thread` (the message-threads beta) against its
 * conversation store before parsing (dialects/anthropic/thread.ts); one that
 * reaches the parser came where no store is. Anthropic's
 * `thread_unsupported_request` makes the SDK send the whole history instead.
 */
function threadUnsupported(): CortexError {
  return new CortexError(
    "invalid_request",
    "thread: message threads are not supported on this endpoint; send the whole conversation without `thread`",
    { param: "thread", details: { error_code: "thread_unsupported_request", unsupported: ["thread"] } },
  );
}

function invalid(param: string, message: string): CortexError {
  return new CortexError("invalid_request", `${param}: ${message}`, { param });
}

function parseSystem(content: string | Array<z.infer<typeof Block>>, path: string): TextPart[] {
  if (typeof content === "string") return content === "" ? [] : [{ type: "text", text: content }];
  return content.map((block, i) => {
    if (block.type !== "text")
      throw invalid(`${path}.${i}.type`, `system blocks must be text, not "${block.type}"`);
    return { type: "text", text: blockText(block, `${path}.${i}`) };
  });
}

function parseImage(block: z.infer<typeof Block>, path: string): ImagePart {
  const { source } = parseOrThrow(ImageBlock, block, path);
  return source.type === "base64"
    ? { type: "image", source: { kind: "base64", mediaType: source.media_type, data: source.data } }
    : { type: "image", source: { kind: "url", url: source.url } };
}

/** A user turn may mix tool results and new content; each run becomes its own canonical message. */
function parseUserContent(content: string | Array<z.infer<typeof Block>>, path: string): CanonicalMessage[] {
  if (typeof content === "string") return [{ role: "user", content: [{ type: "text", text: content }] }];
  const out: CanonicalMessage[] = [];
  const pushPart = (part: TextPart | ImagePart | ToolResultPart) => {
    const last = out.at(-1);
    if (part.type === "tool_result") {
      if (last?.role === "tool") last.content.push(part);
      else out.push({ role: "tool", content: [part] });
    } else if (last?.role === "user") {
      last.content.push(part);
    } else {
      out.push({ role: "user", content: [part] });
    }
  };
  content.forEach((block, i) => {
    const where = `${path}.${i}`;
    switch (block.type) {
      case "text":
        pushPart({ type: "text", text: blockText(block, where) });
        break;
      case "image":
        pushPart(parseImage(block, where));
        break;
      case "tool_result":
        pushPart(parseToolResult(block, where));
        break;
      case "thinking":
      case "redacted_thinking":
        break;
      default:
        throw invalid(`${where}.type`, `content block type "${block.type}" is not supported`);
    }
  });
  return out;
}

function parseToolResult(block: z.infer<typeof Block>, path: string): ToolResultPart {
  const result = plainToolResult(block) ? block : parseOrThrow(ToolResultBlock, block, path);
  const content: Array<TextPart | ImagePart> = [];
  if (typeof result.content === "string") {
    content.push({ type: "text", text: result.content });
  } else {
    result.content?.forEach((inner, i) => {
      const where = `${path}.content.${i}`;
      if (inner.type === "text") content.push({ type: "text", text: blockText(inner, where) });
      else if (inner.type === "image") content.push(parseImage(inner, where));
      else throw invalid(`${where}.type`, `tool_result content type "${inner.type}" is not supported`);
    });
  }
  return { type: "tool_result", toolCallId: result.tool_use_id, content, isError: result.is_error ?? false };
}

function parseAssistantContent(
  content: string | Array<z.infer<typeof Block>>,
  path: string,
): AssistantMessage {
  if (typeof content === "string")
    return { role: "assistant", content: content === "" ? [] : [{ type: "text", text: content }] };
  const parts: AssistantMessage["content"] = [];
  content.forEach((block, i) => {
    const where = `${path}.${i}`;
    switch (block.type) {
      case "text":
        parts.push({ type: "text", text: blockText(block, where) });
        break;
      case "tool_use": {
        const use = plainToolUse(block) ? block : parseOrThrow(ToolUseBlock, block, where);
        parts.push({ type: "tool_call", id: use.id, name: use.name, arguments: JSON.stringify(use.input) });
        break;
      }
      // Earlier reasoning goes to the chat template, which decides whether to show it.
      case "thinking": {
        const text = parseOrThrow(ThinkingBlock, block, where).thinking;
        if (text !== "") parts.push({ type: "thinking", text });
        break;
      }
      case "redacted_thinking":
        break;
      default:
        throw invalid(`${where}.type`, `content block type "${block.type}" is not supported`);
    }
  });
  return { role: "assistant", content: parts };
}

/**
 * Custom tools (no type, or "custom") are offered to the model, including
 * ones marked `defer_loading`: with no tool search here, offering them is
 * the only way the model can use them. Server tools and Anthropic-defined
 * tools without an input schema (web_search_*, bash_*, …) cannot run here
 * and are left out, with a warning.
 */
function parseTool(
  tool: z.infer<typeof ToolSchema>,
  path: string,
  warn: (message: string) => void,
): CanonicalTool[] {
  const custom = tool.type == null || tool.type === "custom";
  if (tool.input_schema === undefined) {
    if (custom) throw invalid(`${path}.input_schema`, "required for custom tools");
    warn(`tool "${tool.name}" of type "${tool.type}" is not available on this server and was left out`);
    return [];
  }
  return [
    {
      name: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      parameters: tool.input_schema,
      ...(tool.strict === undefined ? {} : { strict: tool.strict }),
    },
  ];
}

function parseToolChoice(choice: z.infer<typeof ToolChoiceSchema>): CanonicalToolChoice {
  if (choice.type !== "tool") return { type: choice.type };
  if (choice.name === undefined) throw invalid("tool_choice.name", 'required when type is "tool"');
  return { type: "tool", name: choice.name };
}
