/**
 * A NeuronApi decorator that times model loads for the metrics; every other
 * call passes straight through.
 */
import type { LoadRequest, LoadResponse } from "../../core/neuron-api.ts";
import type { CallOptions, NeuronApi } from "../neuron-client.ts";
import type { GatewayMetrics } from "./gateway-metrics.ts";

export function instrumentNeuron(client: NeuronApi, metrics: GatewayMetrics): NeuronApi {
  return {
    name: client.name,
    endpoint: client.endpoint,
    health: (options) => client.health(options),
    models: (options) => client.models(options),
    unload: (request, options) => client.unload(request, options),
    pin: (request, options) => client.pin(request, options),
    recycle: (request, options) => client.recycle(request, options),
    pull: (request, options) => client.pull(request, options),
    pulls: (options) => client.pulls(options),
    remove: (request, options) => client.remove(request, options),
    target: (path) => client.target(path),
    async load(request: LoadRequest, options?: CallOptions): Promise<LoadResponse> {
      const model = metrics.modelLabel(request.id ?? request.file);
      const started = performance.now();
      try {
        const response = await client.load(request, options);
        if (!response.alreadyLoaded) {
          metrics.modelLoads.inc({ model, node: client.name, result: "ok" });
          metrics.modelLoadDuration.observe(
            { model, node: client.name },
            (performance.now() - started) / 1000,
          );
        }
        return response;
      } catch (error) {
        metrics.modelLoads.inc({ model, node: client.name, result: "failed" });
        throw error;
      }
    },
  };
}
