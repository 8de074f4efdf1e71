/**
 * The neuron contract (neuron-contract.ts) against the real neuron: libllama
 * on the tiny generated model, reached through the gateway's own HTTP
 * NeuronClient, faults injected by the engine's test-only fault injection.
 * One neuron serves the whole file.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NeuronSection } from "../../src/core/config/config-schema.ts";
import { configureLogging } from "../../src/core/logger.ts";
import { NeuronClient } from "../../src/gateway/neuron-client.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";
import { startNeuron } from "../../src/neuron/start-neuron.ts";
import { chatThrough, neuronContract } from "./neuron-contract.ts";

const TOKEN = "contract-secret";
const OTHER_FILE = "contract-other.gguf";
const MiB = 1024 * 1024;

neuronContract(
  "real neuron on the tiny model, over HTTP",
  { lifecycle: true, chat: true, faults: true },
  async () => {
    configureLogging({ level: "warn", format: "text" });
    const dir = mkdtempSync(join(tmpdir(), "cortex-contract-"));
    const modelsDir = join(dir, "models");
    mkdirSync(modelsDir);
    const source = await ensureDemoModel(join(import.meta.dir, "../.tmp/models"));
    copyFileSync(source, join(modelsDir, TINY_MODEL_FILE));
    copyFileSync(source, join(modelsDir, OTHER_FILE));
    const running = await startNeuron({
      config: NeuronSection.parse({
        models_dir: modelsDir,
        auth_token: TOKEN,
        // A cap makes free memory the cap minus what models hold, not what the machine has free right now.
        memory_limit: 256 * MiB,
        default_context_size: 2048,
        default_slots: 1,
      }),
      listen: { hostname: "127.0.0.1", port: 0 },
      // Allows the engine's inject-fault jobs (poison below).
      faultInjection: true,
    });
    const api = new NeuronClient({ name: "real", endpoint: running.url, token: TOKEN });
    const device = (await api.health()).devices[0]!.id;
    return {
      api,
      file: TINY_MODEL_FILE,
      otherFile: OTHER_FILE,
      device,
      chat: (id) => chatThrough(api, id),
      recovered: () => running.pool.untilRecovered(),
      async poison(deviceId) {
        const model = (await api.models()).loaded.find((m) => m.devices.includes(deviceId));
        if (model === undefined) throw new Error(`poison(${deviceId}) needs a model loaded on it to decode`);
        await running.pool.injectFault(deviceId);
        // The device's next decode fails natively; a chat runs one, and fails with the fault.
        const outcome = await chatThrough(api, model.id);
        if (outcome.code !== "device_fault")
          throw new Error(`the chat that hit the injected fault answered ${JSON.stringify(outcome)}`);
      },
      async close() {
        await running.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
);
