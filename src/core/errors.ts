/**
 * One error hierarchy for the whole product. Every failure that can reach a
 * client or an operator is a `CortexError` with a code from `ERROR_CODES`;
 * each dialect renders it in its own envelope (see src/dialects).
 */

export const ERROR_CODES = {
  invalid_request: { status: 400, retryable: false },
  context_length_exceeded: { status: 400, retryable: false },
  unsupported_parameter: { status: 400, retryable: false },
  unauthorized: { status: 401, retryable: false },
  forbidden: { status: 403, retryable: false },
  model_not_found: { status: 404, retryable: false },
  not_found: { status: 404, retryable: false },
  conflict: { status: 409, retryable: true },
  /** The client sent its body too slowly (`body_timeout_s`). */
  body_timeout: { status: 408, retryable: false },
  request_too_large: { status: 413, retryable: false },
  /** The model file itself is bad (malformed, or past llama.cpp's limits): no node can load it. */
  invalid_model_file: { status: 422, retryable: false },
  rate_limited: { status: 429, retryable: true },
  internal: { status: 500, retryable: false },
  upstream_error: { status: 502, retryable: true },
  load_failed: { status: 502, retryable: true },
  unavailable: { status: 503, retryable: true },
  device_fault: { status: 503, retryable: true },
  timeout: { status: 504, retryable: true },
  insufficient_memory: { status: 507, retryable: false },
  /** Not enough disk space for a model pull (docs/MODELS-PULL.md). */
  insufficient_storage: { status: 507, retryable: false },
  overloaded: { status: 529, retryable: true },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface CortexErrorOptions {
  cause?: unknown;
  /** Seconds a client should wait before retrying (429/503). */
  retryAfterS?: number;
  /** Offending parameter, where there is one (OpenAI's `param`). */
  param?: string;
  /** Structured details a dialect may render (token counts, free memory). */
  details?: Record<string, unknown>;
}

export class CortexError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly retryAfterS: number | undefined;
  readonly param: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: CortexErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CortexError";
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
    this.retryAfterS = options.retryAfterS;
    this.param = options.param;
    this.details = options.details;
  }

  /** Plain object for crossing a Worker or HTTP boundary (structured clone drops classes). */
  toWire(): WireError {
    return {
      code: this.code,
      message: this.message,
      status: this.status,
      ...(this.retryAfterS === undefined ? {} : { retryAfterS: this.retryAfterS }),
      ...(this.param === undefined ? {} : { param: this.param }),
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }

  static fromWire(wire: WireError): CortexError {
    const code: ErrorCode = isErrorCode(wire.code) ? wire.code : "internal";
    return new CortexError(code, wire.message, {
      ...(wire.retryAfterS === undefined ? {} : { retryAfterS: wire.retryAfterS }),
      ...(wire.param === undefined ? {} : { param: wire.param }),
      ...(wire.details === undefined ? {} : { details: wire.details }),
    });
  }
}

export interface WireError {
  code: string;
  message: string;
  status: number;
  retryAfterS?: number;
  param?: string;
  details?: Record<string, unknown>;
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}

/** The message of anything thrown, for a log line or an error of our own. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Wraps anything thrown into a CortexError without losing the cause. */
export function toCortexError(error: unknown): CortexError {
  if (error instanceof CortexError) return error;
  return new CortexError("internal", errorMessage(error), { cause: error });
}
