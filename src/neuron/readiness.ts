/**
 * What a supervisor's probes ask of a neuron (Kubernetes' readinessProbe and
 * livenessProbe, docs/KUBERNETES.md). Liveness is only "the process answers":
 * loads and a Stage 1 recovery run in Workers, so the HTTP thread keeps
 * answering through them, and a neuron that cannot recover exits by itself
 * (Stage 2, exit 70). Readiness is "send me requests": a status this list does
 * not name (a new one included) is not ready, so the Service drops the pod.
 */
import type { HealthResponse } from "../core/neuron-api.ts";

// degraded: a device is being recycled or a group recovered; the other devices serve.
const READY: ReadonlySet<string> = new Set<HealthResponse["status"]>(["ok", "degraded"]);

export function isReady(status: HealthResponse["status"]): boolean {
  return READY.has(status);
}
