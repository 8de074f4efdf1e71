/**
 * What a client sends a gateway in these tests: short chats, held streams
 * (end token banned, so the request keeps its slot until aborted) and SSE
 * reading with a deadline, so a hung stream fails the test instead of it.
 */

export interface ChatOptions {
  stream?: boolean;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  extra?: Record<string, unknown>;
}

export function chatBody(model: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model,
    messages: [{ role: "user", content: "Tell me about the garden." }],
    temperature: 0,
    max_tokens: 16,
    ...extra,
  };
}

/** POST /v1/chat/completions (OpenAI dialect). */
export function chat(gatewayUrl: string, model: string, options: ChatOptions = {}): Promise<Response> {
  return fetch(`${gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...options.headers },
    body: JSON.stringify(chatBody(model, { stream: options.stream ?? false, ...options.extra })),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
}

/** POST /v1/messages (Anthropic dialect). */
export function messages(gatewayUrl: string, model: string, options: ChatOptions = {}): Promise<Response> {
  return fetch(`${gatewayUrl}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...options.headers },
    body: JSON.stringify({
      model,
      max_tokens: 16,
      messages: [{ role: "user", content: "Tell me about the garden." }],
      stream: options.stream ?? false,
      ...options.extra,
    }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
}

/** A streamed chat that runs for seconds: until `release()` aborts it. */
export interface HeldStream {
  response: Response;
  release(): Promise<void>;
}

/**
 * Starts a stream whose end token is banned (see noEndBias) with a large
 * max_tokens, and waits for its first byte: from then on the request is in
 * flight on a neuron and holds one slot.
 */
export async function holdStream(
  gatewayUrl: string,
  model: string,
  noEnd: Record<string, number>,
  headers: Record<string, string> = {},
): Promise<HeldStream> {
  const controller = new AbortController();
  const response = await chat(gatewayUrl, model, {
    stream: true,
    signal: controller.signal,
    headers,
    extra: { max_tokens: 8000, context_overflow: "clamp", logit_bias: noEnd },
  });
  if (response.status !== 200)
    throw new Error(`held stream answered ${response.status}: ${await response.text()}`);
  return {
    response,
    async release() {
      controller.abort();
      await response.body?.cancel().catch(() => {});
    },
  };
}

export interface SseFrame {
  event: string | undefined;
  data: string;
}

/** Reads a whole SSE body; rejects if it has not ended within `timeoutMs` (a hang). */
export async function readSse(response: Response, timeoutMs = 10_000): Promise<SseFrame[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void response.body?.cancel().catch(() => {});
      reject(new Error(`the stream did not end within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    const text = await Promise.race([response.text(), timeout]);
    return text
      .split("\n\n")
      .filter((frame) => frame.trim() !== "")
      .map((frame) => {
        const lines = frame.split("\n");
        const event = lines.find((line) => line.startsWith("event: "))?.slice(7);
        const data = lines
          .filter((line) => line.startsWith("data: "))
          .map((line) => line.slice(6))
          .join("\n");
        return { event, data };
      });
  } finally {
    clearTimeout(timer);
  }
}
