/**
 * A scripted neuron: a small Bun.serve that follows the neuron contract
 * (GET /health, GET /models, POST /v1/chat/completions, POST
 * /v1/chat/count_tokens) with one model always loaded, answering each chat
 * with the next scripted reply, as llama.cpp-style OpenAI JSON or SSE
 * chunks written here by hand (not by the gateway's own encoders), and a
 * chat for any other model with 404 `model_not_found`, as a real neuron. It
 * records every chat body it receives, in the OpenAI form the gateway sent.
 */
import type { ModelsResponse } from "../../../src/core/neuron-api.ts";
import { file, GiB, health, loadedModel } from "../../unit/gateway-fixtures.ts";

export interface ScriptedToolCall {
  id: string;
  name: string;
  /** JSON text of the arguments, as a model would produce it. */
  arguments: string;
}

export interface ScriptedReply {
  text?: string;
  /** Sent first, as `reasoning_content`, as llama.cpp sends a thinking model's reasoning. */
  reasoning?: string;
  toolCalls?: ScriptedToolCall[];
}

/** What the gateway sent, read loosely: the tests assert on its shape. */
export interface ReceivedChat {
  model: string;
  stream?: boolean;
  messages: Array<{
    role: string;
    content?: unknown;
    tool_call_id?: string;
    tool_calls?: Array<{ id: string; type: string; function: { name: string; arguments: string } }>;
  }>;
  tools?: Array<{ type: string; function: { name: string; parameters: unknown } }>;
  [key: string]: unknown;
}

export interface ScriptedNeuron {
  url: string;
  received: ReceivedChat[];
  /** Replies to give, in order; when empty, a plain "ok" text answer. */
  replies: ScriptedReply[];
  /** When set, picks the reply from the request itself (before `replies`); undefined falls through. */
  reply?: (body: ReceivedChat) => ScriptedReply | undefined;
  stop(): void;
}

function sse(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** Splits text into pieces of at most `size` characters, as a model streams tokens. */
function pieces(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function finishReason(reply: ScriptedReply): "tool_calls" | "stop" {
  return (reply.toolCalls?.length ?? 0) > 0 ? "tool_calls" : "stop";
}

const USAGE = { prompt_tokens: 42, completion_tokens: 7, total_tokens: 49 };

function completion(model: string, reply: ScriptedReply): unknown {
  return {
    id: "chatcmpl-scripted",
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: reply.text ?? null,
          ...(reply.reasoning === undefined ? {} : { reasoning_content: reply.reasoning }),
          ...(reply.toolCalls === undefined
            ? {}
            : {
                tool_calls: reply.toolCalls.map((call) => ({
                  id: call.id,
                  type: "function",
                  function: { name: call.name, arguments: call.arguments },
                })),
              }),
        },
        finish_reason: finishReason(reply),
      },
    ],
    usage: USAGE,
  };
}

function completionChunks(model: string, reply: ScriptedReply): string {
  const base = { id: "chatcmpl-scripted", object: "chat.completion.chunk", created: 1, model };
  const chunk = (delta: unknown, finish: string | null = null) =>
    sse({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] });
  let out = chunk({ role: "assistant", content: "" });
  for (const piece of pieces(reply.reasoning ?? "", 3)) out += chunk({ reasoning_content: piece });
  for (const piece of pieces(reply.text ?? "", 3)) out += chunk({ content: piece });
  (reply.toolCalls ?? []).forEach((call, index) => {
    out += chunk({
      tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }],
    });
    // Small pieces, so the arguments cross many chunks as a real model's do.
    for (const piece of pieces(call.arguments, 5))
      out += chunk({ tool_calls: [{ index, function: { arguments: piece } }] });
  });
  out += chunk({}, finishReason(reply));
  out += sse({ ...base, choices: [], usage: USAGE });
  return `${out}data: [DONE]\n\n`;
}

/** Serves `modelIds` (all loaded and ready) as node `name`. */
export function startScriptedNeuron(modelIds: string[], name = "scripted"): ScriptedNeuron {
  const received: ReceivedChat[] = [];
  const replies: ScriptedReply[] = [];
  const neuron: ScriptedNeuron = {
    url: "",
    received,
    replies,
    stop: () => server.stop(true),
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      switch (`${request.method} ${path}`) {
        case "GET /health":
          return Response.json(
            health(name, { version: "scripted", loaded: modelIds.map((id) => loadedModel(id)) }),
          );
        case "GET /models": {
          const models: ModelsResponse = {
            available: modelIds.map((id) => file(`${id}.gguf`, GiB)),
            loaded: modelIds.map((id) => loadedModel(id)),
          };
          return Response.json(models);
        }
        case "POST /v1/chat/count_tokens":
          return Response.json({ prompt_tokens: USAGE.prompt_tokens });
        case "POST /v1/chat/completions": {
          const body = (await request.json()) as ReceivedChat;
          received.push(body);
          if (!modelIds.includes(body.model))
            return Response.json(
              {
                error: {
                  code: "model_not_found",
                  message: `model ${body.model} is not loaded on this neuron`,
                  type: "invalid_request_error",
                  param: "model",
                },
              },
              { status: 404 },
            );
          const reply = neuron.reply?.(body) ?? replies.shift() ?? { text: "ok" };
          if (body.stream !== true) return Response.json(completion(body.model, reply));
          return new Response(completionChunks(body.model, reply), {
            headers: { "content-type": "text/event-stream" },
          });
        }
        default:
          return Response.json({ error: { code: "not_found", message: path } }, { status: 404 });
      }
    },
  });
  neuron.url = `http://127.0.0.1:${server.port}`;
  return neuron;
}
