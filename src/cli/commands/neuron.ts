import { defineCommand } from "citty";
import { configArg, loadConfigAndLogging, logArgs } from "../common-args.ts";

export const neuronCommand = defineCommand({
  meta: { name: "neuron", description: "Run the node daemon: serve GGUF models on this machine's devices" },
  args: {
    ...configArg,
    listen: {
      type: "string",
      description: "Listen address (env CORTEX_NEURON_LISTEN)",
      valueHint: "host:port",
    },
    "models-dir": {
      type: "string",
      description: "Directory of GGUF files (env CORTEX_MODELS_DIR; default: serve the generated demo model)",
      valueHint: "dir",
    },
    "fault-injection": {
      type: "string",
      description: "Test only: inject faults, e.g. hang-collective:rank=1 (never use in production)",
      valueHint: "spec",
    },
    ...logArgs,
  },
  async run({ args }) {
    const config = loadConfigAndLogging(
      args,
      [
        { flag: "--listen", env: "CORTEX_NEURON_LISTEN", value: args.listen },
        { flag: "--models-dir", env: "CORTEX_MODELS_DIR", value: args["models-dir"] },
      ],
      "neuron",
    );
    const { runNeuron } = await import("../../neuron/run-neuron.ts");
    return runNeuron(config, { faultInjection: args["fault-injection"] });
  },
});
