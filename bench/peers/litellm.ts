/**
 * The gateway benchmark's peer LiteLLM proxy (PyPI `litellm[proxy]`), in a
 * virtual environment under .cache/bench-peers/litellm-<version>/, set up
 * the way its production guide says: a config file, a master key (it refuses
 * to start without one), no database (so no spend logs or key checks against
 * one), `set_verbose` off, JSON logs at level ERROR (`LITELLM_LOG`),
 * `LITELLM_MODE=PRODUCTION`, one worker per CPU (`--num_workers`). The fake neuron is an `openai/` model with its
 * `api_base`: LiteLLM's OpenAI-compatible route. LiteLLM also serves
 * Anthropic's `/v1/messages` for any model, so it has an Anthropic-in/OpenAI-out
 * row; for an `openai/` model it would call the Responses API, which a neuron
 * (and most OpenAI-compatible servers) does not serve, so
 * `use_chat_completions_url_for_anthropic_messages` has it translate to chat
 * completions instead.
 *
 * The pin: the newest release whose `[proxy]` extra resolves from the
 * registry this project reaches (from 1.110 on it needs `litellm-proxy`,
 * which is not served there).
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { consola } from "consola";
import { chatWorks, freePort, type Service, serviceWhenReady, tempDir } from "../bench-services.ts";
import { FAKE_MODEL } from "../fake-upstream.ts";
import { processTree } from "../process-cpu.ts";

export const LITELLM_PACKAGE = "litellm[proxy]";
export const LITELLM_VERSION = "1.106.12";
const VENV = join(import.meta.dir, "..", "..", ".cache", "bench-peers", `litellm-${LITELLM_VERSION}`);
const PYTHON = join(VENV, "bin", "python");
const CLI = join(VENV, "bin", "litellm");
const MASTER_KEY = "sk-cortex-bench";

async function run(command: string[]): Promise<boolean> {
  const child = Bun.spawn(command, { stdout: "inherit", stderr: "inherit" });
  return (await child.exited) === 0;
}

/** Why the peer cannot run here, or undefined when it can (it needs a Python 3 with venv). */
export function litellmUnavailable(): string | undefined {
  return Bun.which("python3") === null ? "python3 is not on PATH (LiteLLM is a Python program)" : undefined;
}

/** Creates the virtual environment and installs LITELLM_PACKAGE==LITELLM_VERSION unless it is there already. */
export async function ensureLitellmInstalled(): Promise<void> {
  if (existsSync(CLI) && (await run([PYTHON, "-c", `import litellm.proxy.proxy_server`]))) return;
  consola.start(`installing ${LITELLM_PACKAGE}==${LITELLM_VERSION} into ${VENV} (a few minutes)`);
  if (
    !(await run(["python3", "-m", "venv", VENV])) ||
    !(await run([
      join(VENV, "bin", "pip"),
      "install",
      "--disable-pip-version-check",
      "--quiet",
      `${LITELLM_PACKAGE}==${LITELLM_VERSION}`,
    ])) ||
    !existsSync(CLI)
  )
    throw new Error(`pip install ${LITELLM_PACKAGE}==${LITELLM_VERSION} into ${VENV} failed`);
}

/** LiteLLM's proxy in front of `upstreamUrl` on a free port of 127.0.0.1, `workers` processes. */
export async function startLitellm(options: { upstreamUrl: string; workers?: number }): Promise<Service> {
  const dir = tempDir("litellm");
  const port = freePort();
  const config = join(dir, "config.yaml");
  await Bun.write(
    config,
    [
      "model_list:",
      `  - model_name: ${FAKE_MODEL}`,
      "    litellm_params:",
      `      model: openai/${FAKE_MODEL}`,
      `      api_base: ${options.upstreamUrl}/v1`,
      "      api_key: bench",
      "litellm_settings:",
      "  set_verbose: false",
      "  json_logs: true",
      "  request_timeout: 600",
      "  use_chat_completions_url_for_anthropic_messages: true",
      "",
    ].join("\n"),
  );
  const child = Bun.spawn(
    [
      CLI,
      "--config",
      config,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--num_workers",
      String(options.workers ?? availableParallelism()),
    ],
    {
      cwd: dir,
      env: {
        ...process.env,
        HOME: dir,
        LITELLM_LOG: "ERROR",
        LITELLM_MODE: "PRODUCTION",
        LITELLM_MASTER_KEY: MASTER_KEY,
        // Telemetry and the model-cost map would be fetched from the internet at start.
        LITELLM_LOCAL_MODEL_COST_MAP: "True",
        LITELLM_TELEMETRY: "False",
      },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "inherit",
    },
  );
  const url = `http://127.0.0.1:${port}`;
  // The master key, as OpenAI and Anthropic clients send it.
  const headers = { authorization: `Bearer ${MASTER_KEY}`, "x-api-key": MASTER_KEY };
  const service = await serviceWhenReady(
    "litellm",
    child,
    url,
    dir,
    () => chatWorks(url, FAKE_MODEL, headers),
    180_000,
    headers,
  );
  return {
    ...service,
    async stop() {
      // Its workers are processes of their own: stop them with it, so none outlives the benchmark.
      const tree = processTree(child.pid).slice(1);
      await service.stop();
      for (const pid of tree)
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
    },
  };
}
