/**
 * A scripted neuron for failure modes a real one cannot be made to show on
 * cue: plain HTTP/1.1 over a raw TCP listener, so it can close the socket in
 * the middle of a response. It follows the neuron contract (GET /health and
 * /models, its models loaded and ready) and answers chats by model id:
 *
 * - `dies-abruptly`: streams a few SSE chunks, then closes the socket (the
 *   chunked body never gets its terminating chunk);
 * - `dies-cleanly`: streams a few chunks, then ends the body properly but
 *   without a finish reason or `[DONE]` (a silent truncation if unchecked);
 * - `firehose`: an answer of FIREHOSE_FRAMES chunks written as fast as the
 *   socket takes them (waiting for drain when it does not), to show whether
 *   anything between it and a client that stops reading buffers the answer;
 * - `echo` (and any other model it lists): a short, complete streamed answer;
 * - a model it does not list: 404 `model_not_found`, as a real neuron answers.
 *
 * Asked not to stream (`stream` not true), `echo` answers a whole JSON
 * completion, the two `dies-*` models cut theirs off halfway through, and
 * `fails-late` answers 200, a heartbeat, then a device_fault error envelope
 * (as a real neuron does when generation fails after its headers).
 *
 * It records the `x-request-id` header of every chat it receives, and how many
 * bytes of the firehose the socket has accepted.
 */
import type { Socket } from "bun";
import type { ModelsResponse } from "../../../src/core/neuron-api.ts";
import { file, GiB, health, loadedModel } from "../../unit/gateway-fixtures.ts";

export const FAULT_MODELS = ["dies-abruptly", "dies-cleanly", "echo", "fails-late", "firehose"] as const;

/**
 * 1 000 000 frames of ~170 bytes: ~170 MB, more than twice what the kernel's socket buffers can
 * hold on two loopback hops (Linux autotunes each up to tcp_rmem + tcp_wmem max, 32 + 4 MiB here).
 */
export const FIREHOSE_FRAMES = 1_000_000;

export interface FaultNeuron {
  name: string;
  url: string;
  /** x-request-id of each chat received, in order (null when absent). */
  requestIds: Array<string | null>;
  /** Bytes of firehose answers the sockets have accepted so far. */
  firehoseBytes(): number;
  stop(): void;
}

interface ParsedRequest {
  method: string;
  path: string;
  headers: Map<string, string>;
  body: string;
}

function chunk(model: string, delta: Record<string, unknown>, finish: string | null = null): string {
  const body = {
    id: "chatcmpl-fault",
    object: "chat.completion.chunk",
    created: 1,
    model,
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
  return `data: ${JSON.stringify(body)}\n\n`;
}

/** A real neuron's answer to a chat for a model it has not loaded. */
function modelNotFound(model: string) {
  return {
    error: {
      code: "model_not_found",
      message: `model ${model} is not loaded on this neuron`,
      type: "invalid_request_error",
      param: "model",
    },
  };
}

/** One complete request in `buffer`, or undefined while more bytes are needed. */
function parseRequest(buffer: string): ParsedRequest | undefined {
  const end = buffer.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [requestLine = "", ...lines] = buffer.slice(0, end).split("\r\n");
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const length = Number(headers.get("content-length") ?? 0);
  const body = buffer.slice(end + 4);
  if (Buffer.byteLength(body) < length) return undefined;
  const [method = "", path = ""] = requestLine.split(" ");
  return { method, path, headers, body };
}

function jsonResponse(socket: Socket<unknown>, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  socket.write(
    `HTTP/1.1 ${status} X\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
  socket.end();
}

/** A non-streamed answer: whole, or cut off halfway through its body by a closed socket. */
function completionResponse(socket: Socket<unknown>, model: string, ending: "whole" | "cut"): void {
  const text = JSON.stringify({
    id: "chatcmpl-fault",
    object: "chat.completion",
    created: 1,
    model,
    choices: [{ index: 0, message: { role: "assistant", content: "The garden is " }, finish_reason: "stop" }],
    usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
  });
  const length = Buffer.byteLength(text);
  socket.write(
    `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\nconnection: close\r\n\r\n`,
  );
  socket.write(ending === "whole" ? text : text.slice(0, length >> 1));
  socket.end();
}

function lateFailure(socket: Socket<unknown>): void {
  const error = JSON.stringify({
    error: { code: "device_fault", message: "scripted device fault", type: "server_error", param: null },
  });
  socket.write(
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
  );
  socket.write(`1\r\n \r\n${Buffer.byteLength(error).toString(16)}\r\n${error}\r\n0\r\n\r\n`);
  socket.end();
}

async function streamResponse(socket: Socket<unknown>, frames: string[], ending: "close" | "cut") {
  socket.write(
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
  );
  for (const frame of frames) {
    socket.write(`${Buffer.byteLength(frame).toString(16)}\r\n${frame}\r\n`);
    // Let each chunk reach the client on its own, as a model's tokens would.
    await Bun.sleep(20);
  }
  if (ending === "close") socket.write("0\r\n\r\n");
  socket.end();
}

export function startFaultNeuron(name = "faulty"): FaultNeuron {
  const requestIds: Array<string | null> = [];
  let firehoseBytes = 0;
  const drained = new WeakMap<Socket<unknown>, () => void>();
  const closed = new WeakSet<Socket<unknown>>();

  /** Writes all of `data`, waiting for the socket to drain between partial writes. */
  const writeAll = async (socket: Socket<unknown>, data: Buffer): Promise<boolean> => {
    let offset = 0;
    while (offset < data.length) {
      if (closed.has(socket)) return false;
      const written = socket.write(data.subarray(offset));
      offset += Math.max(0, written);
      firehoseBytes += Math.max(0, written);
      if (offset < data.length) await new Promise<void>((resolve) => drained.set(socket, resolve));
    }
    return true;
  };

  const firehose = async (socket: Socket<unknown>, model: string) => {
    socket.write(
      "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    const frame = chunk(model, { content: "water " });
    const wire = Buffer.from(`${Buffer.byteLength(frame).toString(16)}\r\n${frame}\r\n`);
    const batch = Buffer.concat(Array.from({ length: 100 }, () => wire));
    for (let sent = 0; sent < FIREHOSE_FRAMES; sent += 100) if (!(await writeAll(socket, batch))) return;
    const end = `${chunk(model, {}, "stop")}data: [DONE]\n\n`;
    await writeAll(socket, Buffer.from(`${Buffer.byteLength(end).toString(16)}\r\n${end}\r\n0\r\n\r\n`));
    socket.end();
  };
  const models = FAULT_MODELS.map((id) => loadedModel(id, { contextSize: 4096 }));

  const answer = (socket: Socket<unknown>, request: ParsedRequest): void => {
    switch (`${request.method} ${request.path}`) {
      case "GET /health":
        jsonResponse(socket, 200, health(name, { version: "fault", loaded: models }));
        return;
      case "GET /models": {
        const body: ModelsResponse = {
          available: models.map((model) => file(model.file, GiB)),
          loaded: models,
        };
        jsonResponse(socket, 200, body);
        return;
      }
      case "POST /v1/chat/completions": {
        requestIds.push(request.headers.get("x-request-id") ?? null);
        const { model, stream } = JSON.parse(request.body) as { model: string; stream?: boolean };
        if (!models.some((loaded) => loaded.id === model)) {
          jsonResponse(socket, 404, modelNotFound(model));
          return;
        }
        if (stream !== true && model === "fails-late") {
          lateFailure(socket);
          return;
        }
        if (stream !== true && model !== "firehose") {
          completionResponse(socket, model, model === "echo" ? "whole" : "cut");
          return;
        }
        const start = chunk(model, { role: "assistant", content: "" });
        const words = ["The ", "garden ", "is "].map((word) => chunk(model, { content: word }));
        if (model === "firehose") void firehose(socket, model);
        else if (model === "dies-abruptly") void streamResponse(socket, [start, ...words], "cut");
        else if (model === "dies-cleanly") void streamResponse(socket, [start, ...words], "close");
        else
          void streamResponse(
            socket,
            [start, ...words, chunk(model, {}, "stop"), "data: [DONE]\n\n"],
            "close",
          );
        return;
      }
      default:
        jsonResponse(socket, 404, { error: { code: "not_found", message: request.path } });
    }
  };

  const buffers = new WeakMap<Socket<unknown>, string>();
  const listener = Bun.listen<unknown>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, data) {
        const buffer = (buffers.get(socket) ?? "") + data.toString();
        const request = parseRequest(buffer);
        if (request === undefined) {
          buffers.set(socket, buffer);
          return;
        }
        buffers.delete(socket);
        answer(socket, request);
      },
      drain(socket) {
        const resume = drained.get(socket);
        drained.delete(socket);
        resume?.();
      },
      close(socket) {
        closed.add(socket);
        drained.get(socket)?.();
      },
      error() {
        // a client that went away; nothing to clean up
      },
    },
  });
  return {
    name,
    url: `http://127.0.0.1:${listener.port}`,
    requestIds,
    firehoseBytes: () => firehoseBytes,
    stop: () => listener.stop(true),
  };
}
