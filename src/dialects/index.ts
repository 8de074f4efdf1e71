/**
 * The dialects' public surface for the gateway: parse a client request,
 * build the neuron request, decode the neuron's answer, render it (or an
 * error) in the client's dialect. Everything here is pure: no I/O.
 */

export type { AnthropicParseOptions } from "./anthropic/parse-request.ts";
export {
  parseAnthropicCountTokensRequest,
  parseAnthropicRequest,
  renderAnthropicCountTokensResponse,
} from "./anthropic/parse-request.ts";
export { anthropicErrorBody, renderAnthropicError } from "./anthropic/render-error.ts";
export { renderAnthropicRequest } from "./anthropic/render-request.ts";
export type { AnthropicRenderOptions } from "./anthropic/render-response.ts";
export { renderAnthropicResponse } from "./anthropic/render-response.ts";
export type { AnthropicStreamOptions } from "./anthropic/stream-encoder.ts";
export { AnthropicStreamEncoder, createAnthropicStreamEncoder } from "./anthropic/stream-encoder.ts";
export * from "./canonical.ts";
export { CanonicalAccumulator, collectCanonicalStream } from "./collect-stream.ts";
export { parseOpenAIRequest } from "./openai/parse-request.ts";
export { openAIErrorBody, renderOpenAIError } from "./openai/render-error.ts";
export type { UpstreamChatBody, UpstreamOptions } from "./openai/render-request.ts";
export { renderOpenAIRequest, toUpstreamChatBody } from "./openai/render-request.ts";
export type { OpenAIRenderOptions } from "./openai/render-response.ts";
export { renderOpenAIResponse } from "./openai/render-response.ts";
export type { OpenAIStreamOptions } from "./openai/stream-encoder.ts";
export { createOpenAIStreamEncoder, OpenAIStreamEncoder } from "./openai/stream-encoder.ts";
export {
  createUpstreamDecoder,
  parseUpstreamError,
  parseUpstreamResponse,
  UpstreamStreamDecoder,
} from "./openai/upstream.ts";
export type { RenderedError } from "./rendered-error.ts";
export type { SseEvent, SseFrame } from "./sse/sse-parser.ts";
export { createSseParser, encodeSseComment, encodeSseEvent, SseDecoder } from "./sse/sse-parser.ts";
