import { describe, expect, test } from "bun:test";
import { CortexError, ERROR_CODES, type ErrorCode } from "../../../src/core/errors.ts";
import { renderAnthropicError } from "../../../src/dialects/anthropic/render-error.ts";
import type { FinishReason } from "../../../src/dialects/canonical.ts";
import { imageSourceFromUrl, imageSourceToUrl } from "../../../src/dialects/images.ts";
import { toAnthropicError } from "../../../src/dialects/map-anthropic-error.ts";
import { toAnthropicStopReason } from "../../../src/dialects/map-anthropic-stop-reason.ts";
import {
  fromOpenAIFinishReason,
  toOpenAIFinishReason,
} from "../../../src/dialects/map-openai-finish-reason.ts";
import { renderOpenAIError } from "../../../src/dialects/openai/render-error.ts";

describe("finish reason mappers", () => {
  test.each<[FinishReason, string, string]>([
    ["stop", "end_turn", "stop"],
    ["length", "max_tokens", "length"],
    ["stop_sequence", "stop_sequence", "stop"],
    ["tool_calls", "tool_use", "tool_calls"],
  ])("%s → anthropic %s, openai %s", (reason, anthropic, openai) => {
    expect(toAnthropicStopReason(reason)).toBe(anthropic as ReturnType<typeof toAnthropicStopReason>);
    expect(toOpenAIFinishReason(reason)).toBe(openai as ReturnType<typeof toOpenAIFinishReason>);
  });

  test.each<[string | null, string | null, FinishReason]>([
    ["stop", null, "stop"],
    ["stop", "###", "stop_sequence"],
    ["length", null, "length"],
    ["tool_calls", null, "tool_calls"],
    ["function_call", null, "tool_calls"],
    ["content_filter", null, "stop"],
    [null, null, "stop"],
  ])("upstream %p (stop_sequence %p) → %s", (upstream, seq, expected) => {
    expect(fromOpenAIFinishReason(upstream, seq)).toBe(expected);
  });
});

describe("error mappers", () => {
  test.each<[ErrorCode, string, number]>([
    ["invalid_request", "invalid_request_error", 400],
    ["context_length_exceeded", "invalid_request_error", 400],
    ["unsupported_parameter", "invalid_request_error", 400],
    ["unauthorized", "authentication_error", 401],
    ["forbidden", "permission_error", 403],
    ["model_not_found", "not_found_error", 404],
    ["request_too_large", "request_too_large", 413],
    ["rate_limited", "rate_limit_error", 429],
    ["internal", "api_error", 500],
    ["upstream_error", "api_error", 500],
    ["timeout", "timeout_error", 504],
    ["unavailable", "overloaded_error", 529],
    ["overloaded", "overloaded_error", 529],
  ])("anthropic: %s → %s (%i)", (code, type, status) => {
    expect(toAnthropicError(code)).toEqual({ type, status } as ReturnType<typeof toAnthropicError>);
  });

  test("every error code renders in both dialects with a status Anthropic's SDK knows", () => {
    const anthropicStatuses = new Set([400, 401, 403, 404, 413, 429, 500, 504, 529]);
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
      const error = new CortexError(code, `boom ${code}`);
      expect(anthropicStatuses.has(renderAnthropicError(error).status)).toBe(true);
      const openai = renderOpenAIError(error);
      expect(openai.status).toBe(ERROR_CODES[code].status);
      expect(openai.body.error).toMatchObject({ message: `boom ${code}`, code });
    }
  });

  test("context overflow: Anthropic's exact wording with the counts, OpenAI's context_length_exceeded", () => {
    const error = new CortexError("context_length_exceeded", "too long", {
      details: { prompt_tokens: 3000, max_tokens: 2000, context_size: 4096 },
    });
    expect(renderAnthropicError(error)).toEqual({
      status: 400,
      headers: {},
      body: {
        type: "error",
        error: {
          type: "invalid_request_error",
          message:
            "input length and `max_tokens` exceed context limit: 3000 + 2000 > 4096, decrease input length or `max_tokens` and try again",
        },
      },
    });
    const openai = renderOpenAIError(error);
    expect(openai.status).toBe(400);
    expect(openai.body.error.code).toBe("context_length_exceeded");
    expect(openai.body.error.type).toBe("invalid_request_error");
    expect(openai.body.error.message).toContain("maximum context length is 4096 tokens");
    expect(openai.body.error.message).toContain("5000 tokens (3000 in the messages, 2000 in the completion)");
  });

  test("retry-after header comes from the error; non-CortexErrors become 500s", () => {
    expect(
      renderOpenAIError(new CortexError("rate_limited", "slow down", { retryAfterS: 2.5 })).headers,
    ).toEqual({
      "retry-after": "3",
    });
    const rendered = renderAnthropicError(new TypeError("oops"));
    expect(rendered.status).toBe(500);
    expect(rendered.body.error).toEqual({ type: "api_error", message: "oops" });
  });

  test("unsupported_parameter names the param in OpenAI's envelope", () => {
    const body = renderOpenAIError(new CortexError("unsupported_parameter", "n > 1", { param: "n" })).body;
    expect(body).toEqual({
      error: { message: "n > 1", type: "invalid_request_error", param: "n", code: "unsupported_parameter" },
    });
  });
});

describe("image sources", () => {
  test.each([
    ["data:image/png;base64,iVBORw0KGgo=", { kind: "base64", mediaType: "image/png", data: "iVBORw0KGgo=" }],
    [
      "data:image/jpeg;name=a.jpg;base64,/9j/4AAQ",
      { kind: "base64", mediaType: "image/jpeg", data: "/9j/4AAQ" },
    ],
    ["https://example.com/cat.png", { kind: "url", url: "https://example.com/cat.png" }],
  ])("%s", (url, source) => {
    expect(imageSourceFromUrl(url)).toEqual(source as ReturnType<typeof imageSourceFromUrl>);
  });

  test("a base64 image becomes a data URL again", () => {
    expect(imageSourceToUrl({ kind: "base64", mediaType: "image/webp", data: "UklGR" })).toBe(
      "data:image/webp;base64,UklGR",
    );
  });
});
