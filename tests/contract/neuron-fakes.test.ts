/**
 * The neuron contract (neuron-contract.ts) against every fake neuron the
 * tests and benchmarks use, each for the parts it serves.
 */
import { FAKE_MODEL, serveFakeUpstream } from "../../bench/fake-upstream.ts";
import { NeuronClient } from "../../src/gateway/neuron-client.ts";
import { startFaultNeuron } from "../integration/helpers/fault-neuron.ts";
import { startScriptedNeuron } from "../integration/helpers-dialects/scripted-neuron.ts";
import { device, file, GiB, MemoryNeuron } from "../unit/gateway-fixtures.ts";
import { chatThrough, neuronContract } from "./neuron-contract.ts";

neuronContract(
  "MemoryNeuron (gateway unit tests; serves no chats)",
  { lifecycle: true, chat: false, faults: true },
  async () => {
    const neuron = new MemoryNeuron("memory", {
      devices: [device("cuda-dev-0"), device("cuda-dev-1")],
      available: [file("contract-a.gguf", GiB), file("contract-b.gguf", GiB)],
    });
    return {
      api: neuron,
      file: "contract-a.gguf",
      otherFile: "contract-b.gguf",
      device: "cuda-dev-1",
      poison: async (deviceId) => neuron.fault(deviceId),
      recovered: () => neuron.untilRecovered(),
      close: async () => {},
    };
  },
);

neuronContract(
  "fault neuron (gateway stream tests; a fixed set of models)",
  { lifecycle: false, chat: true, faults: false },
  async () => {
    const faulty = startFaultNeuron("contract-faulty");
    const api = new NeuronClient({ name: faulty.name, endpoint: faulty.url });
    return {
      api,
      file: "echo.gguf",
      otherFile: "firehose.gguf",
      device: "cuda-dev-0",
      preloaded: "echo",
      chat: (id) => chatThrough(api, id),
      close: async () => faulty.stop(),
    };
  },
);

neuronContract(
  "scripted neuron (dialect tests; a fixed set of models)",
  { lifecycle: false, chat: true, faults: false },
  async () => {
    const scripted = startScriptedNeuron(["contract-model"], "contract-scripted");
    const api = new NeuronClient({ name: "contract-scripted", endpoint: scripted.url });
    return {
      api,
      file: "contract-model.gguf",
      otherFile: "contract-other.gguf",
      device: "cuda-dev-0",
      preloaded: "contract-model",
      chat: (id) => chatThrough(api, id),
      close: async () => scripted.stop(),
    };
  },
);

neuronContract(
  "bench fake upstream (gateway benchmarks; one fixed model)",
  { lifecycle: false, chat: true, faults: false },
  async () => {
    const server = serveFakeUpstream();
    const api = new NeuronClient({ name: "contract-bench", endpoint: `http://127.0.0.1:${server.port}` });
    return {
      api,
      file: `${FAKE_MODEL}.gguf`,
      otherFile: "contract-other.gguf",
      device: "cpu-0",
      preloaded: FAKE_MODEL,
      chat: (id) => chatThrough(api, id),
      close: async () => {
        await server.stop(true);
      },
    };
  },
);
