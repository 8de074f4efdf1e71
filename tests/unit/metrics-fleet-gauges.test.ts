/**
 * Scrape-time gauges and label rules of the gateway registry: what a
 * Prometheus scrape shows must follow the fleet as it is at that scrape, and
 * label values must stay bounded whatever clients send.
 */
import { describe, expect, test } from "bun:test";
import type { EvictionReason } from "../../src/gateway/fleet/eviction-log.ts";
import type { FleetSnapshot } from "../../src/gateway/fleet/fleet-types.ts";
import { attachFleetGauges, knownModelPredicate } from "../../src/gateway/metrics/fleet-gauges.ts";
import { GatewayMetrics } from "../../src/gateway/metrics/gateway-metrics.ts";
import { parseExposition, sumSamples } from "../../src/gateway/metrics/parse-exposition.ts";
import type { AdmissionDepth } from "../../src/gateway/routing/admission.ts";
import { device, fleet, GiB, model, node } from "./gateway-fixtures.ts";

function setup(initial: FleetSnapshot) {
  const state = {
    view: initial,
    depths: new Map<string, AdmissionDepth>(),
    evictions: { make_room: 0, idle_ttl: 0, admin: 0 } as Record<EvictionReason, number>,
  };
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  attachFleetGauges(metrics, {
    view: () => state.view,
    depths: () => state.depths,
    evictions: { counts: () => ({ ...state.evictions }) },
    profiles: ["qwen", "llama"],
  });
  const scrape = async () => parseExposition((await metrics.render()).body);
  return { state, metrics, scrape };
}

describe("fleet gauges", () => {
  test("each scrape reads the fleet as it is then (prom-client calls the collect hooks)", async () => {
    const { state, scrape } = setup(
      fleet(
        node("beast", {
          devices: [device("cuda-dev-0", { memoryTotal: 24 * GiB, memoryFree: 20 * GiB })],
          loaded: [model("qwen")],
        }),
        node("spare", { state: "down", loaded: [] }),
      ),
    );
    let samples = await scrape();
    expect(sumSamples(samples, "cortex_gateway_node_state", { node: "beast", state: "up" })).toBe(1);
    expect(sumSamples(samples, "cortex_gateway_node_state", { node: "beast" })).toBe(1);
    expect(sumSamples(samples, "cortex_gateway_node_state", { node: "spare", state: "down" })).toBe(1);
    expect(
      sumSamples(samples, "cortex_gateway_device_memory_used_bytes", { node: "beast", device: "cuda-dev-0" }),
    ).toBe(4 * GiB);
    expect(sumSamples(samples, "cortex_gateway_device_memory_total_bytes", { node: "beast" })).toBe(24 * GiB);
    expect(sumSamples(samples, "cortex_gateway_models_loaded", { node: "beast" })).toBe(1);

    state.view = fleet(
      node("beast", {
        state: "degraded",
        devices: [device("cuda-dev-0", { memoryTotal: 24 * GiB, memoryFree: 10 * GiB })],
        loaded: [model("qwen"), model("llama")],
      }),
    );
    samples = await scrape();
    expect(sumSamples(samples, "cortex_gateway_node_state", { node: "beast", state: "degraded" })).toBe(1);
    expect(sumSamples(samples, "cortex_gateway_node_state", { node: "beast", state: "up" })).toBe(0);
    expect(sumSamples(samples, "cortex_gateway_device_memory_used_bytes", { node: "beast" })).toBe(14 * GiB);
    expect(sumSamples(samples, "cortex_gateway_models_loaded", { node: "beast" })).toBe(2);
    // A node gone from the fleet leaves the scrape instead of keeping its last value.
    expect(samples.some((s) => s.labels.node === "spare")).toBe(false);
  });

  test("evictions are the log's totals by reason, not added up across scrapes", async () => {
    const { state, scrape } = setup(fleet());
    state.evictions.make_room = 2;
    await scrape();
    state.evictions.idle_ttl = 1;
    const samples = await scrape();
    expect(sumSamples(samples, "cortex_gateway_evictions_total", { reason: "make_room" })).toBe(2);
    expect(sumSamples(samples, "cortex_gateway_evictions_total", { reason: "idle_ttl" })).toBe(1);
    expect(sumSamples(samples, "cortex_gateway_evictions_total", { reason: "admin" })).toBe(0);
  });

  test("queue depth: configured models show 0 when idle; unknown ids add up under one label", async () => {
    const { state, scrape } = setup(fleet());
    let samples = await scrape();
    expect(samples.filter((s) => s.name === "cortex_gateway_queue_depth").map((s) => s.labels.model)).toEqual(
      ["qwen", "llama"],
    );
    state.depths = new Map([
      ["qwen", { inFlight: 4, queued: 3 }],
      ["stray-a", { inFlight: 1, queued: 2 }],
      ["stray-b", { inFlight: 1, queued: 5 }],
    ]);
    samples = await scrape();
    expect(sumSamples(samples, "cortex_gateway_queue_depth", { model: "qwen" })).toBe(3);
    expect(sumSamples(samples, "cortex_gateway_queue_depth", { model: "unknown" })).toBe(7);
  });
});

describe("model labels", () => {
  test("profiles and loaded ids are labels; anything else is unknown, and follows the fleet", () => {
    let view = fleet(node("beast", { loaded: [model("adhoc")] }));
    const isKnown = knownModelPredicate(["qwen"], () => view);
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    metrics.setKnownModels(isKnown);
    expect(metrics.modelLabel("qwen")).toBe("qwen");
    expect(metrics.modelLabel("adhoc")).toBe("adhoc");
    expect(metrics.modelLabel("some user's typo")).toBe("unknown");
    expect(metrics.modelLabel(undefined)).toBe("unknown");
    view = fleet(node("beast"));
    expect(metrics.modelLabel("adhoc")).toBe("unknown");
  });

  test("without a fleet attached every model is unknown", () => {
    expect(new GatewayMetrics({ defaultMetrics: false }).modelLabel("qwen")).toBe("unknown");
  });
});

describe("registry", () => {
  test("default process metrics are exported with the gateway prefix", async () => {
    const metrics = new GatewayMetrics();
    const samples = parseExposition((await metrics.render()).body);
    expect(samples.some((s) => s.name === "cortex_gateway_process_cpu_seconds_total")).toBe(true);
    expect(samples.some((s) => s.name === "cortex_gateway_process_resident_memory_bytes")).toBe(true);
  });
});
