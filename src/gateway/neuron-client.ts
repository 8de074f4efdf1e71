/**
 * Typed HTTP client for one neuron's lifecycle API (`/health`, `/models`,
 * `/models/load`, `/models/unload`, `/models/pin`, `/devices/recycle`), plus
 * the one retry classifier the router's failover and the lead's proxy share:
 * every failure becomes a CortexError whose `retryable` flag says whether
 * another node (or a later try) may succeed.
 */
import { z } from "zod";
import { CortexError, ERROR_CODES, type ErrorCode, isErrorCode } from "../core/errors.ts";
import {
  HealthResponse,
  type LoadRequest,
  LoadResponse,
  ModelsResponse,
  type PinRequest,
  type RecycleRequest,
  type UnloadRequest,
} from "../core/neuron-api.ts";
import {
  type PullRequest,
  PullStatus,
  PullsResponse,
  type RemoveRequest,
  RemoveResponse,
} from "../core/pull-api.ts";

/** What the gateway needs from a neuron; tests inject fakes of this. */
export interface NeuronApi {
  readonly name: string;
  readonly endpoint: string;
  health(options?: CallOptions): Promise<HealthResponse>;
  models(options?: CallOptions): Promise<ModelsResponse>;
  load(request: LoadRequest, options?: CallOptions): Promise<LoadResponse>;
  unload(request: UnloadRequest, options?: CallOptions): Promise<void>;
  pin(request: PinRequest, options?: CallOptions): Promise<void>;
  recycle(request: RecycleRequest, options?: CallOptions): Promise<void>;
  /** Starts (or joins) a model pull; resolves once the neuron has resolved the source (docs/MODELS-PULL.md). */
  pull(request: PullRequest, options?: CallOptions): Promise<PullStatus>;
  pulls(options?: CallOptions): Promise<PullStatus[]>;
  /** Deletes a model file that is not loaded; resolves with the files removed. */
  remove(request: RemoveRequest, options?: CallOptions): Promise<string[]>;
  /** URL and headers for a request the gateway proxies itself (chat completions). */
  target(path: string): UpstreamTarget;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Overrides the client's default timeout for this call. */
  timeoutMs?: number | undefined;
}

export interface UpstreamTarget {
  url: string;
  headers: Record<string, string>;
}

export interface NeuronClientOptions {
  name: string;
  endpoint: string;
  /** The neuron's auth_token; empty = none. */
  token?: string | undefined;
  /** Timeout of polls and small calls (health, models, pin, recycle). */
  timeoutMs?: number | undefined;
  /** Timeout of load and unload, which wait for the neuron's work. */
  lifecycleTimeoutMs?: number | undefined;
  fetch?: typeof fetch | undefined;
}

/** Bun's and Node's error codes for a peer that cannot be reached or dropped us. */
const NETWORK_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ConnectionRefused",
  "ConnectionClosed",
  "ConnectionReset",
  "FailedToOpenSocket",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

const ErrorBody = z.looseObject({
  message: z.string().optional(),
  code: z.union([z.string(), z.number()]).nullish(),
  param: z.string().nullish(),
  details: z.record(z.string(), z.unknown()).nullish(),
});
const ErrorEnvelope = z.looseObject({ error: z.union([ErrorBody, z.string()]) });

/**
 * The retry classifier: anything a neuron call (or a proxied request before
 * its first byte) threw → CortexError. Network failures are `unavailable`
 * (retryable, the node is likely down), timeouts `timeout`; CortexErrors pass
 * through. A caller's own abort is rethrown unchanged by the callers, never
 * classified as the node's fault.
 */
export function classifyNeuronError(error: unknown, node: string): CortexError {
  if (error instanceof CortexError) return error;
  // A stack overflow or a bad length is the gateway's own failure: never the node's, never retried.
  if (error instanceof RangeError)
    return new CortexError("internal", `the gateway failed on this request: ${error.message}`, {
      cause: error,
    });
  const name = error instanceof Error || error instanceof DOMException ? error.name : "";
  if (name === "TimeoutError")
    return new CortexError("timeout", `neuron ${node} did not answer in time`, {
      cause: error,
      details: { node },
    });
  const code = networkCode(error);
  if (code !== undefined)
    return new CortexError("unavailable", `neuron ${node} is unreachable (${code})`, {
      cause: error,
      retryAfterS: 1,
      details: { node, network: code },
    });
  const message = error instanceof Error ? error.message : String(error);
  return new CortexError("upstream_error", `neuron ${node} failed: ${message}`, {
    cause: error,
    details: { node },
  });
}

/** True when the error is a network-level failure (the node itself is unreachable). */
export function isNetworkFailure(error: CortexError): boolean {
  return typeof error.details?.network === "string";
}

function networkCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_ERROR_CODES.has(code)) return code;
    current = current.cause;
  }
  return undefined;
}

/** A neuron's non-2xx answer → CortexError, keeping its code where it names one of ours. */
export function errorFromResponse(node: string, status: number, body: unknown, retryAfter?: string | null) {
  const parsed = ErrorEnvelope.safeParse(body);
  const direct = ErrorBody.safeParse(body);
  const error =
    parsed.success && typeof parsed.data.error !== "string"
      ? parsed.data.error
      : direct.success && (direct.data.message !== undefined || direct.data.code != null)
        ? direct.data
        : undefined;
  const plain = parsed.success && typeof parsed.data.error === "string" ? parsed.data.error : undefined;
  const code: ErrorCode =
    typeof error?.code === "string" && isErrorCode(error.code) ? error.code : codeForStatus(status);
  const message = error?.message ?? plain ?? `HTTP ${status}`;
  const retryAfterS = retryAfter == null ? undefined : Number.parseFloat(retryAfter);
  return new CortexError(code, `neuron ${node}: ${message}`, {
    ...(retryAfterS === undefined || Number.isNaN(retryAfterS) ? {} : { retryAfterS }),
    ...(error?.param == null ? {} : { param: error.param }),
    details: { ...(error?.details ?? {}), node, status },
  });
}

function codeForStatus(status: number): ErrorCode {
  if (status === 500) return "upstream_error";
  const match = (Object.keys(ERROR_CODES) as ErrorCode[]).find((code) => ERROR_CODES[code].status === status);
  if (match !== undefined) return match;
  return status >= 400 && status < 500 ? "invalid_request" : "upstream_error";
}

/** HTTP client for one neuron. Stateless apart from its configuration. */
export class NeuronClient implements NeuronApi {
  readonly name: string;
  readonly endpoint: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #lifecycleTimeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #targets = new Map<string, UpstreamTarget>();

  constructor(options: NeuronClientOptions) {
    this.name = options.name;
    this.endpoint = options.endpoint.replace(/\/+$/, "");
    this.#token = options.token ?? "";
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#lifecycleTimeoutMs = options.lifecycleTimeoutMs ?? 300_000;
    this.#fetch = options.fetch ?? fetch;
  }

  /** Built once per path (every chat asks): callers read it and must not change it. */
  target(path: string): UpstreamTarget {
    let target = this.#targets.get(path);
    if (target === undefined) {
      const headers: Record<string, string> = this.#token ? { authorization: `Bearer ${this.#token}` } : {};
      target = Object.freeze({
        url: `${this.endpoint}${path.startsWith("/") ? path : `/${path}`}`,
        headers: Object.freeze(headers),
      });
      this.#targets.set(path, target);
    }
    return target;
  }

  health(options?: CallOptions): Promise<HealthResponse> {
    return this.#call("GET", "/health", HealthResponse, undefined, options, this.#timeoutMs);
  }

  models(options?: CallOptions): Promise<ModelsResponse> {
    return this.#call("GET", "/models", ModelsResponse, undefined, options, this.#timeoutMs);
  }

  load(request: LoadRequest, options?: CallOptions): Promise<LoadResponse> {
    // On a connection of its own: a load whose connection breaks is read as the neuron crashing on
    // the file (model-loader.ts), so it must never ride a pooled connection that a restarted
    // neuron closed a moment ago.
    return this.#call("POST", "/models/load", LoadResponse, request, options, this.#lifecycleTimeoutMs, true);
  }

  async unload(request: UnloadRequest, options?: CallOptions): Promise<void> {
    await this.#call("POST", "/models/unload", z.unknown(), request, options, this.#lifecycleTimeoutMs);
  }

  async pin(request: PinRequest, options?: CallOptions): Promise<void> {
    await this.#call("POST", "/models/pin", z.unknown(), request, options, this.#timeoutMs);
  }

  async recycle(request: RecycleRequest, options?: CallOptions): Promise<void> {
    await this.#call("POST", "/devices/recycle", z.unknown(), request, options, this.#lifecycleTimeoutMs);
  }

  pull(request: PullRequest, options?: CallOptions): Promise<PullStatus> {
    // The neuron answers once it has listed the repository and checked the disk: a poll's timeout is too short.
    return this.#call("POST", "/models/pull", PullStatus, request, options, this.#lifecycleTimeoutMs);
  }

  async pulls(options?: CallOptions): Promise<PullStatus[]> {
    return (await this.#call("GET", "/models/pulls", PullsResponse, undefined, options, this.#timeoutMs))
      .pulls;
  }

  async remove(request: RemoveRequest, options?: CallOptions): Promise<string[]> {
    return (await this.#call("POST", "/models/remove", RemoveResponse, request, options, this.#timeoutMs))
      .removed;
  }

  async #call<S extends z.ZodType>(
    method: "GET" | "POST",
    path: string,
    schema: S,
    body: unknown,
    options: CallOptions | undefined,
    defaultTimeoutMs: number,
    freshConnection = false,
  ): Promise<z.infer<S>> {
    const { url, headers } = this.target(path);
    const timeout = AbortSignal.timeout(options?.timeoutMs ?? defaultTimeoutMs);
    const signal = options?.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, {
        method,
        headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(freshConnection ? { keepalive: false } : {}),
        signal,
      });
      text = await response.text();
    } catch (error) {
      if (options?.signal?.aborted) throw options.signal.reason;
      throw classifyNeuronError(error, this.name);
    }
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = text;
    }
    if (!response.ok)
      throw errorFromResponse(this.name, response.status, json, response.headers.get("retry-after"));
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new CortexError(
        "upstream_error",
        `neuron ${this.name} answered ${method} ${path} in an unexpected shape: ${z.prettifyError(parsed.error)}`,
        { details: { node: this.name } },
      );
    return parsed.data;
  }
}
