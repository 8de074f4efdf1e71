import type { ErrorCode } from "../core/errors.ts";

export type OpenAIErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "server_error";

/** Each CortexError code as OpenAI's error `type`; the status stays the CortexError's own. */
export const OPENAI_ERROR_TYPES = {
  invalid_request: "invalid_request_error",
  context_length_exceeded: "invalid_request_error",
  unsupported_parameter: "invalid_request_error",
  unauthorized: "authentication_error",
  forbidden: "permission_error",
  model_not_found: "invalid_request_error",
  not_found: "not_found_error",
  conflict: "invalid_request_error",
  body_timeout: "invalid_request_error",
  request_too_large: "invalid_request_error",
  invalid_model_file: "server_error",
  rate_limited: "rate_limit_error",
  internal: "server_error",
  upstream_error: "server_error",
  load_failed: "server_error",
  unavailable: "server_error",
  device_fault: "server_error",
  timeout: "server_error",
  insufficient_memory: "server_error",
  insufficient_storage: "server_error",
  overloaded: "server_error",
} as const satisfies Record<ErrorCode, OpenAIErrorType>;

export function toOpenAIErrorType(code: ErrorCode): OpenAIErrorType {
  return OPENAI_ERROR_TYPES[code];
}
