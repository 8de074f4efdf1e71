/**
 * `POST /v1/embeddings` through the fleet: the model resolved, a slot of its
 * admission taken, routed like a chat (a loaded copy, or a load with
 * eviction; failover before the answer) and the neuron's answer passed on
 * under the name the client asked for.
 */
import { CortexError } from "../core/errors.ts";
import { logger } from "../core/logger.ts";
import { parseEmbeddingsRequest, toUpstreamEmbeddingsBody } from "../dialects/openai/embeddings.ts";
import { errorFromResponse } from "./neuron-client.ts";
import type { RoutingServices } from "./routing/routing-services.ts";
import { requestDeadline } from "./upstream-guard.ts";

const log = logger("embeddings");
/** Each unknown request field is logged once per process, not once per request. */
const warnedFields = new Set<string>();

function warnUnknownField(name: string): void {
  if (warnedFields.has(name)) return;
  warnedFields.add(name);
  log.warn(`POST /v1/embeddings: unknown field "${name}" ignored (logged once)`);
}

export interface EmbeddingsDeps {
  routing: Pick<RoutingServices, "loader" | "admission" | "route">;
  /** gateway.request_timeout_s, as ms: bounds the whole request (upstream-guard.ts). */
  requestTimeoutMs?: number;
}

/** The OpenAI answer for an embeddings body; throws (a CortexError) for anything that fails. */
export async function createEmbeddings(
  deps: EmbeddingsDeps,
  body: unknown,
  ctx: { requestId: string; signal: AbortSignal },
): Promise<unknown> {
  const request = parseEmbeddingsRequest(body, { onUnknownField: warnUnknownField });
  const { routing } = deps;
  const model = routing.loader.resolve(request.model).id;
  const deadline = requestDeadline(ctx.signal, deps.requestTimeoutMs);
  const signal = deadline.signal;
  let release: (() => void) | undefined;
  try {
    release = routing.admission.tryAcquire(model) ?? (await routing.admission.acquire(model, signal));
    const routed = await routing.route(
      model,
      async (target) => {
        const upstream = target.upstream("v1/embeddings");
        const response = await fetch(upstream.url, {
          method: "POST",
          headers: { ...upstream.headers, "content-type": "application/json", "x-request-id": ctx.requestId },
          body: JSON.stringify(toUpstreamEmbeddingsBody(request, target.modelId)),
          signal,
        });
        const answer: unknown = await response.json().catch(() => undefined);
        if (!response.ok)
          throw errorFromResponse(target.node, response.status, answer, response.headers.get("retry-after"));
        if (
          typeof answer !== "object" ||
          answer === null ||
          !Array.isArray((answer as { data?: unknown }).data)
        )
          throw new CortexError("upstream_error", `node ${target.node} answered embeddings without data`);
        return answer as Record<string, unknown>;
      },
      {
        signal,
        deadline: deps.requestTimeoutMs === undefined ? undefined : Date.now() + deps.requestTimeoutMs,
      },
    );
    routed.finish();
    return { ...routed.value, model: request.model };
  } catch (error) {
    // A wait or call our deadline ended rejects with the signal's reason: the deadline's own error.
    throw !ctx.signal.aborted && signal.aborted ? signal.reason : error;
  } finally {
    release?.();
    deadline.clear();
  }
}
