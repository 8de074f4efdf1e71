/**
 * Gauges read from the fleet state at scrape time (prom-client `collect`),
 * so they are exactly as fresh as the last poll and cost nothing between
 * scrapes.
 */
import { NodeState } from "../../core/admin-api.ts";
import type { EvictionLog } from "../fleet/eviction-log.ts";
import type { FleetSnapshot } from "../fleet/fleet-types.ts";
import type { AdmissionDepth } from "../routing/admission.ts";
import type { GatewayMetrics } from "./gateway-metrics.ts";

export interface FleetSources {
  view(): FleetSnapshot;
  depths(): Map<string, AdmissionDepth>;
  evictions: Pick<EvictionLog, "counts">;
  /** Model ids that may appear as label values (profiles and loaded models). */
  knownModels(): Iterable<string>;
}

export function attachFleetGauges(metrics: GatewayMetrics, sources: FleetSources): void {
  const refreshKnown = () => metrics.setKnownModels(sources.knownModels());
  refreshKnown();
  // prom-client calls `collect` on each scrape; the metric is reset and refilled from the current state.
  const hook = (metric: { reset(): void }, fill: () => void) => {
    (metric as unknown as { collect?: () => void }).collect = () => {
      metric.reset();
      fill();
    };
  };
  hook(metrics.nodeState, () => {
    refreshKnown();
    for (const node of sources.view().nodes)
      for (const state of NodeState.options)
        metrics.nodeState.set({ node: node.name, state }, node.state === state ? 1 : 0);
  });
  hook(metrics.deviceMemoryUsed, () => {
    for (const node of sources.view().nodes)
      for (const device of node.devices)
        metrics.deviceMemoryUsed.set(
          { node: node.name, device: device.id },
          device.memoryTotal - device.memoryFree,
        );
  });
  hook(metrics.deviceMemoryTotal, () => {
    for (const node of sources.view().nodes)
      for (const device of node.devices)
        metrics.deviceMemoryTotal.set({ node: node.name, device: device.id }, device.memoryTotal);
  });
  hook(metrics.modelsLoaded, () => {
    for (const node of sources.view().nodes)
      metrics.modelsLoaded.set({ node: node.name }, node.loaded.length);
  });
  hook(metrics.queueDepth, () => {
    for (const [model, depth] of sources.depths())
      metrics.queueDepth.set({ model: metrics.modelLabel(model) }, depth.queued);
  });
  hook(metrics.evictions, () => {
    for (const [reason, count] of Object.entries(sources.evictions.counts()))
      metrics.evictions.inc({ reason }, count);
  });
}
