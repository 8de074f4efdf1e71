/**
 * OpenAI's `POST /v1/embeddings`: the request read and checked (the gateway
 * refuses a bad one before routing, the neuron reads it again), and the
 * answer rendered from the vectors.
 */
import { z } from "zod";
import { CortexError } from "../../core/errors.ts";
import { parseOrThrow } from "../zod-boundary.ts";

const TokenIds = z.array(z.number().int().nonnegative());

const EmbeddingsRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()), TokenIds, z.array(TokenIds)]),
  encoding_format: z.enum(["float", "base64"]).optional(),
  dimensions: z.number().int().positive().optional(),
  user: z.string().optional(),
});

export interface EmbeddingsRequest {
  model: string;
  /** Each input as text or token ids; a single string or token array is one input. */
  inputs: Array<string | number[]>;
  encodingFormat: "float" | "base64";
  dimensions?: number;
}

const KNOWN_KEYS = new Set(Object.keys(EmbeddingsRequestSchema.shape));

/**
 * Reads an embeddings body; a 400 naming the field for anything it cannot
 * honour. Fields it does not know are told to `onUnknownField` (the gateway
 * logs each name once).
 */
export function parseEmbeddingsRequest(
  body: unknown,
  options: { onUnknownField?: (name: string) => void } = {},
): EmbeddingsRequest {
  const parsed = parseOrThrow(EmbeddingsRequestSchema, body, "");
  if (options.onUnknownField)
    for (const key of Object.keys(parsed)) if (!KNOWN_KEYS.has(key)) options.onUnknownField(key);
  const { input } = parsed;
  const inputs: Array<string | number[]> =
    typeof input === "string"
      ? [input]
      : input.length > 0 && input.every((item) => typeof item === "number")
        ? [input as number[]]
        : (input as Array<string | number[]>);
  if (inputs.length === 0)
    throw new CortexError("invalid_request", "input: expected at least one input", { param: "input" });
  return {
    model: parsed.model,
    inputs,
    encodingFormat: parsed.encoding_format ?? "float",
    ...(parsed.dimensions === undefined ? {} : { dimensions: parsed.dimensions }),
  };
}

/** The body for the neuron: the same request with the neuron's model id. */
export function toUpstreamEmbeddingsBody(request: EmbeddingsRequest, model: string): Record<string, unknown> {
  return {
    model,
    input: request.inputs,
    encoding_format: request.encodingFormat,
    ...(request.dimensions === undefined ? {} : { dimensions: request.dimensions }),
  };
}

interface EmbeddingsResponse {
  object: "list";
  data: Array<{ object: "embedding"; index: number; embedding: number[] | string }>;
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

/** OpenAI's answer; base64 is the little-endian float32 bytes, as OpenAI sends them. */
export function renderEmbeddingsResponse(
  vectors: readonly Float32Array[],
  options: { model: string; promptTokens: number; encodingFormat: "float" | "base64" },
): EmbeddingsResponse {
  return {
    object: "list",
    data: vectors.map((vector, index) => ({
      object: "embedding",
      index,
      embedding:
        options.encodingFormat === "base64"
          ? Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString("base64")
          : Array.from(vector),
    })),
    model: options.model,
    usage: { prompt_tokens: options.promptTokens, total_tokens: options.promptTokens },
  };
}
