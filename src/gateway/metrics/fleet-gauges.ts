/**
 * Gauges read from the fleet state at scrape time, so they are exactly as
 * fresh as the last poll and cost nothing between scrapes. prom-client
 * (15.x) looks up a metric's `collect` when it is read, not only when it is
 * built, so the hooks can be attached once the fleet exists; a unit test
 * (metrics-fleet-gauges) pins that behaviour.
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
  /** Configured profile ids: always exported (0 when idle) and always valid labels. */
  profiles: readonly string[];
}

interface Resettable {
  reset(): void;
}

/** Makes `metric` refill itself from the current state on every scrape. */
function refillOnScrape(metric: Resettable, fill: () => void): void {
  Object.assign(metric, {
    collect() {
      metric.reset();
      fill();
    },
  });
}

/**
 * Labels for models: profile ids, and ids loaded on some node (an operator
 * put them there, so they are bounded); everything else is "unknown".
 */
export function knownModelPredicate(
  profiles: readonly string[],
  view: () => FleetSnapshot,
): (model: string) => boolean {
  const configured = new Set(profiles);
  return (model) =>
    configured.has(model) || view().nodes.some((node) => node.loaded.some((loaded) => loaded.id === model));
}

export function attachFleetGauges(metrics: GatewayMetrics, sources: FleetSources): void {
  metrics.setKnownModels(knownModelPredicate(sources.profiles, () => sources.view()));
  refillOnScrape(metrics.nodeState, () => {
    for (const node of sources.view().nodes)
      for (const state of NodeState.options)
        metrics.nodeState.set({ node: node.name, state }, node.state === state ? 1 : 0);
  });
  refillOnScrape(metrics.deviceMemoryUsed, () => {
    for (const node of sources.view().nodes)
      for (const device of node.devices)
        metrics.deviceMemoryUsed.set(
          { node: node.name, device: device.id },
          Math.max(0, device.memoryTotal - device.memoryFree),
        );
  });
  refillOnScrape(metrics.deviceMemoryTotal, () => {
    for (const node of sources.view().nodes)
      for (const device of node.devices)
        metrics.deviceMemoryTotal.set({ node: node.name, device: device.id }, device.memoryTotal);
  });
  refillOnScrape(metrics.modelsLoaded, () => {
    for (const node of sources.view().nodes)
      metrics.modelsLoaded.set({ node: node.name }, node.loaded.length);
  });
  // In flight and queued are the admission lanes' own counts, read at scrape time rather than kept twice.
  const byModel = (pick: (depth: AdmissionDepth) => number) => {
    const totals = new Map<string, number>(sources.profiles.map((model) => [model, 0]));
    // Several unknown ids share one label: add them up rather than keep the last.
    for (const [model, depth] of sources.depths()) {
      const label = metrics.modelLabel(model);
      totals.set(label, (totals.get(label) ?? 0) + pick(depth));
    }
    return totals;
  };
  refillOnScrape(metrics.queueDepth, () => {
    for (const [model, count] of byModel((depth) => depth.queued)) metrics.queueDepth.set({ model }, count);
  });
  refillOnScrape(metrics.inFlight, () => {
    for (const [model, count] of byModel((depth) => depth.inFlight)) metrics.inFlight.set({ model }, count);
  });
  refillOnScrape(metrics.evictions, () => {
    for (const [reason, count] of Object.entries(sources.evictions.counts()))
      metrics.evictions.inc({ reason }, count);
  });
}
