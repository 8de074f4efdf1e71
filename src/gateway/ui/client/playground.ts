/**
 * The playground: a streamed chat with one model in either dialect
 * (`/v1/chat/completions` or `/v1/messages`), read as server-sent events
 * with the gateway's own SSE parser; it shows the time to the first token,
 * tokens/s, the raw request and the raw stream, and tool calls as tool
 * calls, not as text.
 */
import { SseDecoder } from "../../../dialects/sse/sse-parser.ts";
import { errorMessage, session } from "./api.ts";
import { h, swap } from "./dom.ts";
import { duration, rate } from "./format.ts";

type Dialect = "openai" | "anthropic";

interface ToolCall {
  name: string;
  arguments: string;
}

interface Turn {
  role: "user" | "assistant";
  text: string;
  toolCalls: ToolCall[];
  error?: string;
}

interface ToolSpec {
  name: string;
  description?: string;
  parameters?: unknown;
}

const RAW_LIMIT = 100_000;

function value(id: string): string {
  return (
    (document.getElementById(id) as HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement | null)
      ?.value ?? ""
  );
}

/** The tools textarea: a JSON array of {name, description?, parameters?}, or nothing. */
function parseTools(text: string): ToolSpec[] {
  if (text.trim() === "") return [];
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed) || !parsed.every((t) => typeof t?.name === "string"))
    throw new Error("Tools must be a JSON array of objects with a name");
  return parsed as ToolSpec[];
}

function requestBody(
  dialect: Dialect,
  model: string,
  turns: Turn[],
  maxTokens: number,
  tools: ToolSpec[],
  force: boolean,
) {
  const messages = turns
    .filter((t) => t.error === undefined && t.text !== "")
    .map((t) => ({ role: t.role, content: t.text }));
  const emptySchema = { type: "object", properties: {} };
  if (dialect === "openai")
    return {
      model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: maxTokens,
      ...(tools.length === 0
        ? {}
        : {
            tools: tools.map((t) => ({
              type: "function",
              function: {
                name: t.name,
                description: t.description ?? "",
                parameters: t.parameters ?? emptySchema,
              },
            })),
            ...(force ? { tool_choice: "required" } : {}),
          }),
    };
  return {
    model,
    messages,
    stream: true,
    max_tokens: maxTokens,
    ...(tools.length === 0
      ? {}
      : {
          tools: tools.map((t) => ({
            name: t.name,
            description: t.description ?? "",
            input_schema: t.parameters ?? emptySchema,
          })),
          ...(force ? { tool_choice: { type: "any" } } : {}),
        }),
  };
}

/** What one streamed event adds to the answer; `token` says whether it carried output. */
interface Delta {
  text?: string;
  toolName?: { index: number; name: string };
  toolArgs?: { index: number; text: string };
  outputTokens?: number;
  promptTokens?: number;
  error?: string;
}

function openaiDelta(data: string): Delta[] {
  if (data === "[DONE]") return [];
  const chunk = JSON.parse(data) as {
    choices?: Array<{
      delta?: {
        content?: string | null;
        tool_calls?: Array<{ index: number; function?: { name?: string; arguments?: string } }>;
      };
    }>;
    usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
    error?: { message?: string };
  };
  const out: Delta[] = [];
  if (chunk.error) out.push({ error: chunk.error.message ?? "stream error" });
  const delta = chunk.choices?.[0]?.delta;
  if (delta?.content) out.push({ text: delta.content });
  for (const call of delta?.tool_calls ?? []) {
    if (call.function?.name) out.push({ toolName: { index: call.index, name: call.function.name } });
    if (call.function?.arguments)
      out.push({ toolArgs: { index: call.index, text: call.function.arguments } });
  }
  if (chunk.usage)
    out.push({ outputTokens: chunk.usage.completion_tokens, promptTokens: chunk.usage.prompt_tokens });
  return out;
}

function anthropicDelta(event: string, data: string): Delta[] {
  const body = JSON.parse(data) as {
    index?: number;
    message?: { usage?: { input_tokens?: number } };
    content_block?: { type: string; name?: string };
    delta?: { type?: string; text?: string; partial_json?: string };
    usage?: { output_tokens?: number };
    error?: { message?: string };
  };
  const index = body.index ?? 0;
  switch (event) {
    case "message_start":
      return [{ promptTokens: body.message?.usage?.input_tokens }];
    case "content_block_start":
      return body.content_block?.type === "tool_use"
        ? [{ toolName: { index, name: body.content_block.name ?? "" } }]
        : [];
    case "content_block_delta":
      if (body.delta?.type === "text_delta") return [{ text: body.delta.text ?? "" }];
      if (body.delta?.type === "input_json_delta")
        return [{ toolArgs: { index, text: body.delta.partial_json ?? "" } }];
      return [];
    case "message_delta":
      return [{ outputTokens: body.usage?.output_tokens }];
    case "error":
      return [{ error: body.error?.message ?? "stream error" }];
    default:
      return [];
  }
}

export interface Playground {
  element: HTMLElement;
  /** Offers these models (the catalogue) and asks for an API key when the gateway wants one. */
  update(models: string[], apiKeyRequired: boolean): void;
}

export function createPlayground(): Playground {
  const turns: Turn[] = [];
  let controller: AbortController | undefined;
  const transcript = h("div", { id: "pg-transcript", class: "transcript", "aria-live": "polite" });
  const stats = h("p", { id: "pg-stats", class: "muted", role: "status" });
  const rawRequest = h("pre", { id: "pg-raw-request" });
  const rawResponse = h("pre", { id: "pg-raw-response" });
  const modelSelect = h("select", { id: "pg-model", name: "model", required: true }) as HTMLSelectElement;
  const keyField = h(
    "div",
    { class: "field", hidden: true },
    h("label", { for: "pg-apikey" }, "API key"),
    h("input", { id: "pg-apikey", type: "password", autocomplete: "off", value: session.apiKey() }),
  );
  const sendButton = h("button", { type: "submit", id: "pg-send" }, "Send") as HTMLButtonElement;
  const stopButton = h(
    "button",
    { type: "button", id: "pg-stop", disabled: true, onclick: () => controller?.abort() },
    "Stop",
  ) as HTMLButtonElement;

  const renderTranscript = () =>
    swap(
      transcript,
      turns.map((turn) =>
        h(
          "div",
          { class: `turn turn-${turn.role}` },
          h("span", { class: "who" }, turn.role === "user" ? "You" : "Model"),
          h("div", { class: "text" }, turn.text),
          turn.toolCalls.map((call) =>
            h(
              "div",
              { class: "tool-call" },
              h("span", { class: "tag" }, "tool call"),
              h("code", {}, `${call.name}(${call.arguments})`),
            ),
          ),
          turn.error ? h("p", { class: "error", role: "alert" }, turn.error) : null,
        ),
      ),
    );

  async function send(event: Event): Promise<void> {
    event.preventDefault();
    const input = document.getElementById("pg-input") as HTMLTextAreaElement;
    const text = input.value.trim();
    const model = modelSelect.value;
    if (text === "" || model === "") return;
    const dialect = (document.querySelector<HTMLInputElement>('input[name="pg-dialect"]:checked')?.value ??
      "openai") as Dialect;
    const answer: Turn = { role: "assistant", text: "", toolCalls: [] };
    let tools: ToolSpec[];
    try {
      tools = parseTools(value("pg-tools"));
    } catch (error) {
      swap(stats, `Tools: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    turns.push({ role: "user", text, toolCalls: [] });
    const body = requestBody(
      dialect,
      model,
      turns,
      Number(value("pg-max")) || 64,
      tools,
      (document.getElementById("pg-force") as HTMLInputElement).checked,
    );
    turns.push(answer);
    input.value = "";
    renderTranscript();
    const requestId = `ui-${crypto.randomUUID()}`;
    const key = value("pg-apikey");
    session.setApiKey(key);
    const headers: Record<string, string> = { "content-type": "application/json", "x-request-id": requestId };
    if (key !== "") {
      if (dialect === "openai") headers.authorization = `Bearer ${key}`;
      else headers["x-api-key"] = key;
    }
    if (dialect === "anthropic") headers["anthropic-version"] = "2023-06-01";
    const path = dialect === "openai" ? "/v1/chat/completions" : "/v1/messages";
    rawRequest.textContent = `POST ${path}\n\n${JSON.stringify(body, null, 2)}`;
    rawResponse.textContent = "";
    swap(stats, `Sending ${requestId}…`);
    controller = new AbortController();
    sendButton.disabled = true;
    stopButton.disabled = false;
    const sentAt = performance.now();
    let firstAt: number | undefined;
    let lastAt: number | undefined;
    let outputTokens: number | undefined;
    let promptTokens: number | undefined;
    let chunks = 0;
    try {
      const response = await fetch(path, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok || response.body === null) {
        answer.error = `${response.status}: ${await errorMessage(response)}`;
        rawResponse.textContent = `HTTP ${response.status}\n\n${answer.error}`;
        return;
      }
      rawResponse.textContent = `HTTP ${response.status}\n\n`;
      const decoder = new SseDecoder();
      const text = new TextDecoder();
      const reader = response.body.getReader();
      for (;;) {
        const { done, value: chunk } = await reader.read();
        if (done) break;
        if ((rawResponse.textContent?.length ?? 0) < RAW_LIMIT)
          rawResponse.textContent += text.decode(chunk, { stream: true });
        for (const sse of decoder.push(chunk)) {
          const deltas = dialect === "openai" ? openaiDelta(sse.data) : anthropicDelta(sse.event, sse.data);
          for (const delta of deltas) {
            if (delta.text !== undefined || delta.toolName !== undefined || delta.toolArgs !== undefined) {
              const now = performance.now();
              firstAt ??= now;
              lastAt = now;
              chunks += 1;
            }
            if (delta.text !== undefined) answer.text += delta.text;
            if (delta.toolName !== undefined)
              answer.toolCalls[delta.toolName.index] = { name: delta.toolName.name, arguments: "" };
            if (delta.toolArgs !== undefined) {
              const call = answer.toolCalls[delta.toolArgs.index] ?? { name: "?", arguments: "" };
              call.arguments += delta.toolArgs.text;
              answer.toolCalls[delta.toolArgs.index] = call;
            }
            if (delta.outputTokens !== undefined) outputTokens = delta.outputTokens;
            if (delta.promptTokens !== undefined) promptTokens = delta.promptTokens;
            if (delta.error !== undefined) answer.error = delta.error;
          }
        }
        answer.toolCalls = answer.toolCalls.filter(Boolean);
        renderTranscript();
        swap(stats, `Streaming ${requestId}: ${chunks} deltas`);
      }
    } catch (error) {
      answer.error = controller.signal.aborted
        ? "stopped"
        : error instanceof Error
          ? error.message
          : String(error);
    } finally {
      controller = undefined;
      sendButton.disabled = false;
      stopButton.disabled = true;
      renderTranscript();
      const tokens = outputTokens ?? chunks;
      // Token by token (a delta per token or so), the decode rate from the first token to the last; an
      // answer that came in a few pieces (a tool call is sent once it is whole) is timed from the send.
      const streamed = chunks > 1 && chunks * 2 >= tokens;
      const from = streamed ? firstAt : sentAt;
      const counted = streamed ? tokens - 1 : tokens;
      const seconds = from !== undefined && lastAt !== undefined ? (lastAt - from) / 1000 : 0;
      swap(
        stats,
        h("span", { "data-request-id": requestId }, `request ${requestId}`),
        firstAt === undefined ? "" : ` · TTFT ${duration(firstAt - sentAt)}`,
        seconds > 0 && counted > 0
          ? ` · ${rate(counted / seconds)} tokens/s${streamed ? "" : " (from the send)"}`
          : "",
        ` · ${tokens} generated`,
        promptTokens === undefined ? "" : ` · ${promptTokens} prompt tokens`,
        answer.error === undefined ? " · done" : ` · ${answer.error}`,
      );
    }
  }

  const element = h(
    "form",
    { id: "playground-form", onsubmit: (event: Event) => void send(event) },
    h(
      "div",
      { class: "row" },
      h("div", { class: "field" }, h("label", { for: "pg-model" }, "Model"), modelSelect),
      h(
        "fieldset",
        { class: "field" },
        h("legend", {}, "Dialect"),
        h(
          "label",
          {},
          h("input", { type: "radio", name: "pg-dialect", value: "openai", checked: true }),
          " OpenAI Chat Completions",
        ),
        h(
          "label",
          {},
          h("input", { type: "radio", name: "pg-dialect", value: "anthropic" }),
          " Anthropic Messages",
        ),
      ),
      h(
        "div",
        { class: "field" },
        h("label", { for: "pg-max" }, "Max tokens"),
        h("input", { id: "pg-max", type: "number", min: 1, value: 64 }),
      ),
      keyField,
    ),
    h(
      "details",
      {},
      h("summary", {}, "Tools"),
      h(
        "div",
        { class: "field" },
        h(
          "label",
          { for: "pg-tools" },
          "Tools: a JSON array of {name, description, parameters (JSON Schema)}",
        ),
        h("textarea", {
          id: "pg-tools",
          rows: 4,
          placeholder:
            '[{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":20}},"required":["city"]}}]',
        }),
        h("label", {}, h("input", { type: "checkbox", id: "pg-force" }), " Require a tool call"),
      ),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "pg-input" }, "Message"),
      h("textarea", { id: "pg-input", rows: 3, required: true }),
    ),
    h(
      "div",
      { class: "row" },
      sendButton,
      stopButton,
      h(
        "button",
        {
          type: "button",
          id: "pg-clear",
          onclick: () => {
            turns.length = 0;
            renderTranscript();
          },
        },
        "Clear",
      ),
    ),
    transcript,
    stats,
    h("details", {}, h("summary", {}, "Raw request"), rawRequest),
    h("details", {}, h("summary", {}, "Raw response"), rawResponse),
  );

  let offered = "";
  return {
    element,
    update(models, apiKeyRequired) {
      keyField.hidden = !apiKeyRequired;
      const key = models.join("\n");
      if (key === offered) return;
      offered = key;
      const chosen = modelSelect.value;
      modelSelect.replaceChildren(...models.map((id) => h("option", { value: id }, id)));
      if (models.includes(chosen)) modelSelect.value = chosen;
    },
  };
}
