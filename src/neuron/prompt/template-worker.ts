/**
 * Renders chat templates off the neuron's main thread (template-renderer.ts):
 * a template is a program, and one with a huge loop blocked `/health` for
 * minutes. The main thread terminates this Worker when a render runs past
 * its time.
 */
import { toCortexError } from "../../core/errors.ts";
import { renderChatTemplate } from "./chat-template.ts";
import type { RenderReply, RenderRequest } from "./template-renderer.ts";

declare const self: Worker;

self.onmessage = (event: MessageEvent<RenderRequest>) => {
  const { id, template, input, tokens } = event.data;
  let reply: RenderReply;
  try {
    reply = { id, text: renderChatTemplate(template, input, tokens) };
  } catch (error) {
    reply = { id, error: toCortexError(error).toWire() };
  }
  self.postMessage(reply);
};
