import type { ErrorCode } from "../core/errors.ts";

export type AnthropicErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "api_error"
  | "timeout_error"
  | "overloaded_error";

/**
 * Each CortexError code as Anthropic's error type and the HTTP status
 * Anthropic pairs with it. Statuses Anthropic never sends (409, 502, 503,
 * 507) are folded into the nearest one it does, so SDK retry logic sees a
 * status it knows: "try again later" conditions become 529 overloaded.
 */
export const ANTHROPIC_ERRORS = {
  invalid_request: { type: "invalid_request_error", status: 400 },
  context_length_exceeded: { type: "invalid_request_error", status: 400 },
  unsupported_parameter: { type: "invalid_request_error", status: 400 },
  unauthorized: { type: "authentication_error", status: 401 },
  forbidden: { type: "permission_error", status: 403 },
  model_not_found: { type: "not_found_error", status: 404 },
  not_found: { type: "not_found_error", status: 404 },
  conflict: { type: "overloaded_error", status: 529 },
  body_timeout: { type: "invalid_request_error", status: 400 },
  request_too_large: { type: "request_too_large", status: 413 },
  invalid_model_file: { type: "api_error", status: 500 },
  rate_limited: { type: "rate_limit_error", status: 429 },
  internal: { type: "api_error", status: 500 },
  upstream_error: { type: "api_error", status: 500 },
  load_failed: { type: "api_error", status: 500 },
  unavailable: { type: "overloaded_error", status: 529 },
  device_fault: { type: "overloaded_error", status: 529 },
  timeout: { type: "timeout_error", status: 504 },
  insufficient_memory: { type: "api_error", status: 500 },
  insufficient_storage: { type: "api_error", status: 500 },
  overloaded: { type: "overloaded_error", status: 529 },
} as const satisfies Record<ErrorCode, { type: AnthropicErrorType; status: number }>;

export function toAnthropicError(code: ErrorCode): { type: AnthropicErrorType; status: number } {
  return ANTHROPIC_ERRORS[code];
}
