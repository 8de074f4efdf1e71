/**
 * A scripted neuron over real HTTP, for faults a real one shows only under a
 * debugger: it reports model `m` loaded, and answers each chat as the test
 * says (a normal short stream, silence before the headers, one chunk and
 * then silence); embeddings it never answers. `freeze()` makes it a SIGSTOPped process: every request,
 * `/health` included, waits forever (until `stop()`).
 */
import { file, GiB, health, loadedModel } from "../../unit/gateway-fixtures.ts";

export type ChatScript = "answer" | "silent" | "first-then-silent";

export interface ScriptedNeuron {
  name: string;
  url: string;
  /** Chats received so far. */
  chats(): number;
  /** How the next chats are answered (default "answer"). */
  script(next: (chatNo: number) => ChatScript): void;
  /** Resolves at the next chat this neuron receives. */
  nextChat(): Promise<void>;
  /** Answers the chats held "silent" so far (non-streamed), late. */
  answerHeld(): void;
  freeze(): void;
  stop(): void;
}

const utf8 = new TextEncoder();

export function chunk(content: string): string {
  return `data: ${JSON.stringify({
    id: "chatcmpl-x",
    object: "chat.completion.chunk",
    created: 0,
    model: "m",
    choices: [{ index: 0, delta: { role: "assistant", content }, finish_reason: null }],
  })}\n\n`;
}

const ANSWER = `${chunk("Hi")}data: ${JSON.stringify({
  id: "chatcmpl-x",
  object: "chat.completion.chunk",
  created: 0,
  model: "m",
  choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
})}\n\ndata: [DONE]\n\n`;

const COMPLETION = JSON.stringify({
  id: "chatcmpl-x",
  object: "chat.completion",
  created: 0,
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "Hi" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});

export function startScriptedNeuron(name: string): ScriptedNeuron {
  let chats = 0;
  let frozen = false;
  let scriptFor: (chatNo: number) => ChatScript = () => "answer";
  const waiters: (() => void)[] = [];
  // Everything held open, ended by stop().
  const held: (() => void)[] = [];
  const hold = <T>(value: T): Promise<T> => new Promise((resolve) => held.push(() => resolve(value)));
  const silent: (() => void)[] = [];
  const model = loadedModel("m", { file: "m.gguf" });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(request) {
      if (frozen) return hold(new Response("stopped", { status: 503 }));
      const path = new URL(request.url).pathname;
      if (path === "/health") return Response.json(health(name, { loaded: [model] }));
      if (path === "/models") return Response.json({ available: [file("m.gguf", GiB)], loaded: [model] });
      if (path === "/v1/embeddings") return hold(new Response("stopped", { status: 503 }));
      if (path !== "/v1/chat/completions") return Response.json({}, { status: 404 });
      const body = (await request.json()) as { stream?: boolean };
      chats += 1;
      const script = scriptFor(chats);
      for (const wake of waiters.splice(0)) wake();
      if (script === "silent")
        return new Promise<Response>((resolve) => {
          held.push(() => resolve(new Response("stopped", { status: 503 })));
          silent.push(() =>
            resolve(new Response(COMPLETION, { headers: { "content-type": "application/json" } })),
          );
        });
      if (!body.stream) return new Response(COMPLETION, { headers: { "content-type": "application/json" } });
      const headers = { "content-type": "text/event-stream" };
      if (script === "answer") return new Response(ANSWER, { headers });
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(utf8.encode(chunk("Hi")));
          held.push(() => {
            try {
              controller.close();
            } catch {
              // the gateway cancelled it already
            }
          });
        },
      });
      return new Response(stream, { headers });
    },
  });
  return {
    name,
    url: `http://127.0.0.1:${server.port}`,
    chats: () => chats,
    script: (next) => {
      scriptFor = next;
    },
    nextChat: () => new Promise((resolve) => waiters.push(resolve)),
    answerHeld: () => {
      for (const answer of silent.splice(0)) answer();
    },
    freeze: () => {
      frozen = true;
    },
    stop: () => {
      for (const release of held.splice(0)) release();
      void server.stop(true);
    },
  };
}
