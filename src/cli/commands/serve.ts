import { defineCommand } from "citty";
import { configArg, loadConfigAndLogging, logArgs } from "../common-args.ts";

export const serveCommand = defineCommand({
  meta: { name: "serve", description: "Run the gateway: one OpenAI/Anthropic API in front of the fleet" },
  args: {
    ...configArg,
    listen: {
      type: "string",
      description: "API listen address (env CORTEX_GATEWAY_LISTEN)",
      valueHint: "host:port",
    },
    ...logArgs,
  },
  async run({ args }) {
    const config = loadConfigAndLogging(
      args,
      [{ flag: "--listen", env: "CORTEX_GATEWAY_LISTEN", value: args.listen }],
      "gateway",
    );
    // Loaded on use, so the other commands start without the gateway and the neuron.
    const { runGateway } = await import("../../gateway/run-gateway.ts");
    // The local neuron only when there is no fleet to front: its module pulls in the neuron's
    // (engine, templates, native bindings), which a gateway in front of a fleet does not hold.
    return runGateway(config, {
      startLocalNeuron: async (loaded) => (await import("../local-neuron.ts")).startLocalNeuron(loaded),
    });
  },
});
