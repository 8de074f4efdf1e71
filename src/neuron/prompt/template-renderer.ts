/**
 * Chat templates rendered in a Worker with a time limit and an output limit
 * (issue 18 §5): a template with a huge loop blocked the neuron's main thread
 * (no `/health` answer for 120 s) and grew to ~20 GB. A render past
 * `neuron.template_timeout_s` terminates the Worker (the next render starts
 * a fresh one) and fails its request, and any waiting behind it, with a
 * clear error; a prompt longer than the output limit is refused.
 */
import { CortexError, type WireError } from "../../core/errors.ts";
import { startWorker } from "../../core/worker-thread.ts";
import { workerUrl } from "../../core/worker-url.ts";
import type { TemplateRenderInput, TemplateTokens } from "./chat-template.ts";

export interface RenderRequest {
  id: number;
  template: string;
  input: TemplateRenderInput;
  tokens: TemplateTokens;
}

export type RenderReply = { id: number; text: string } | { id: number; error: WireError };

interface Pending {
  resolve: (text: string) => void;
  reject: (error: Error) => void;
}

export class TemplateRenderer {
  readonly #timeoutMs: number;
  readonly #maxChars: number;
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  /** `maxChars`: the longest prompt a template may produce (UTF-16 units). */
  constructor(timeoutMs: number, maxChars: number) {
    this.#timeoutMs = timeoutMs;
    this.#maxChars = maxChars;
  }

  render(template: string, input: TemplateRenderInput, tokens: TemplateTokens): Promise<string> {
    const worker = this.#worker ?? this.#start();
    const id = this.#nextId++;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#restart(
          new CortexError(
            "invalid_request",
            `the model's chat template took longer than neuron.template_timeout_s (${this.#timeoutMs / 1000} s) to render these messages`,
            { param: "messages" },
          ),
        );
      }, this.#timeoutMs);
      this.#pending.set(id, {
        resolve: (text) => {
          clearTimeout(timer);
          if (text.length > this.#maxChars)
            reject(
              new CortexError(
                "invalid_request",
                `the model's chat template rendered a prompt of ${text.length} characters, over the limit of ${this.#maxChars}`,
                { param: "messages" },
              ),
            );
          else resolve(text);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      const request: RenderRequest = { id, template, input, tokens };
      worker.postMessage(request);
    });
  }

  close(): void {
    this.#restart(new CortexError("unavailable", "the neuron is shutting down"));
  }

  #start(): Worker {
    const worker = startWorker(
      workerUrl("neuron/prompt/template-worker.ts", new URL("./template-worker.ts", import.meta.url)),
      "template",
    );
    worker.onmessage = (event: MessageEvent<RenderReply>) => {
      const reply = event.data;
      const pending = this.#pending.get(reply.id);
      if (pending === undefined) return;
      this.#pending.delete(reply.id);
      if ("text" in reply) pending.resolve(reply.text);
      else pending.reject(CortexError.fromWire(reply.error));
    };
    worker.onerror = (event) => {
      this.#restart(new CortexError("internal", `the chat template Worker failed: ${event.message}`));
    };
    this.#worker = worker;
    return worker;
  }

  /** Ends the Worker (a render past its time cannot be stopped otherwise) and fails what waited on it. */
  #restart(error: CortexError): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const waiter of pending) waiter.reject(error);
  }
}
