/**
 * Stage 2 as an operator meets it: `cortex neuron --fault-injection` with a
 * leader forward that no abort reaches. The watchdog fires, the abort frees
 * nothing, the grace period runs out, and the process exits 70 for systemd
 * to restart it, leaving the `tp watchdog:` / `ncclCommAbort` trail. The
 * times are checked as the watchdog measured them (in its error and log
 * lines), never against this test's clock.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";
import { noEndBias } from "./helpers/real-fleet.ts";

const ROOT = join(import.meta.dir, "../..");
const MODELS = join(ROOT, "tests/.tmp/models");
const STEP_TIMEOUT_S = 1;
const GRACE_S = 1;

/** Collects a child's output and resolves when `pattern` shows up in it. */
function watchOutput(stream: ReadableStream<Uint8Array>, sink: { text: string }) {
  const waiters: Array<{ pattern: RegExp; resolve: (match: RegExpMatchArray) => void }> = [];
  const done = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      sink.text += decoder.decode(chunk, { stream: true });
      for (const w of [...waiters]) {
        const match = sink.text.match(w.pattern);
        if (match) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(match);
        }
      }
    }
  })();
  return {
    done,
    waitFor(pattern: RegExp): Promise<RegExpMatchArray> {
      const match = sink.text.match(pattern);
      if (match) return Promise.resolve(match);
      return new Promise((resolve) => waiters.push({ pattern, resolve }));
    },
  };
}

describe("Stage 2 through the cortex neuron command", () => {
  test("a leader hang that ignores the abort makes `cortex neuron` exit 70 once the grace period has run out, with the markers in its log", async () => {
    const noEnd = await noEndBias(await ensureDemoModel(MODELS));
    const dir = mkdtempSync(join(tmpdir(), "cortex-neuron-stage2-"));
    const config = join(dir, "cortex.toml");
    writeFileSync(
      config,
      [
        "[neuron]",
        'listen = "127.0.0.1:0"',
        `models_dir = ${JSON.stringify(MODELS)}`,
        "cpu_devices = 2",
        `step_timeout_s = ${STEP_TIMEOUT_S}`,
        `stage2_grace_s = ${GRACE_S}`,
        "",
      ].join("\n"),
    );
    const env = { ...process.env };
    delete env.NEURON_TP_STEP_TIMEOUT_S;
    delete env.NEURON_TP_RECOVERY_GRACE_S;
    delete env.CORTEX_CPU_DEVICES;
    const child = Bun.spawn(
      [
        process.execPath,
        join(ROOT, "src/cli/main.ts"),
        "neuron",
        "--config",
        config,
        "--fault-injection",
        "hang-forward:rank=0,step=2,abort=ignore",
      ],
      { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" },
    );
    const out = { text: "" };
    const stdout = watchOutput(child.stdout, out);
    const stderr = watchOutput(child.stderr, out);
    const kill = setTimeout(() => child.kill("SIGKILL"), 45_000);
    try {
      const listening = await Promise.race([
        stdout.waitFor(/listening on 127\.0\.0\.1:(\d+)/),
        stderr.waitFor(/listening on 127\.0\.0\.1:(\d+)/),
      ]);
      const url = `http://127.0.0.1:${listening[1]}`;
      const load = await fetch(`${url}/models/load`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          id: "tiny-tp",
          file: TINY_MODEL_FILE,
          deviceCount: 2,
          contextSize: 512,
          slots: 1,
        }),
      });
      expect(load.status).toBe(201);

      // Step 1 decodes; the leader's forward of step 2 never returns, abort or not.
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "tiny-tp",
          messages: [{ role: "user", content: "Tell me about the garden." }],
          temperature: 0,
          max_tokens: 10,
          logit_bias: noEnd,
        }),
      });
      expect(response.status).toBe(503);
      const message = ((await response.json()) as { error: { message: string } }).error.message;
      expect(message).toContain("tp watchdog: step 2 of tiny-tp timed out");
      const code = await child.exited;
      await Promise.all([stdout.done, stderr.done]);

      expect(code).toBe(70);
      // The step timer failed the request, never before the step timeout ...
      expect(Number(/timed out after (\d+) ms/.exec(message)?.[1])).toBeGreaterThanOrEqual(
        STEP_TIMEOUT_S * 1000,
      );
      const log = out.text;
      expect(log).toContain("tp fault injection is ON");
      expect(log).toMatch(
        /tp watchdog: .*model=tiny-tp devices=\[cpu-0,cpu-1\] step=2 ran=\d+ms: step exceeded/,
      );
      expect(log).toMatch(/tp watchdog: ncclCommAbort\[shm\] .*rank=1 device=cpu-1 outcome=aborted/);
      expect(log).toContain("tp watchdog: flight-recorder");
      // ... and the process exits only after the grace period ran out after the abort, as the
      // watchdog measured it from firing.
      const stage2 = new RegExp(
        `tp watchdog: Stage 2 .*step=2 after=(\\d+)ms: the leader did not answer within ${GRACE_S * 1000} ms after the abort`,
      ).exec(log);
      expect(stage2, log).not.toBeNull();
      expect(Number(stage2?.[1])).toBeGreaterThanOrEqual(GRACE_S * 1000);
      expect(log).toContain("tp watchdog: Stage 2 exit 70 group=");
    } finally {
      clearTimeout(kill);
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
