/**
 * Runs the single-process mode's neuron as a child process and keeps it
 * running: spawn, wait for `/health`, forward its log lines, and when it
 * exits unexpectedly (a Stage 2 exit, a native abort, a kill) log an ERROR
 * line, emit an event, and start it again after a backoff (restart-policy.ts
 * decides the delay; this module only measures and acts). The gateway keeps
 * serving meanwhile: the node is down for its fleet, as any neuron that went
 * away.
 *
 * One owner, one state machine:
 *
 *   starting --healthy--> healthy --exit--> waiting --timer--> starting
 *   starting --exit / health timeout--> waiting   (the first start: rejected instead)
 *   any --stop()--> stopping --child reaped--> stopped
 */
import type { ConsolaInstance } from "consola";
import type { LogFormat } from "../core/config/config-schema.ts";
import { errorMessage } from "../core/errors.ts";
import { type BackoffPolicy, type ExitReason, exitReason, nextRestart } from "./restart-policy.ts";

export type SupervisorEvent =
  | { type: "spawned"; pid: number; attempt: number }
  | { type: "healthy"; pid: number; attempt: number }
  | {
      type: "exited";
      pid: number;
      reason: ExitReason;
      /** How long it had been healthy; undefined when it never was (a failed start). */
      healthyMs: number | undefined;
    }
  | { type: "restart-scheduled"; failures: number; delayMs: number; reason: ExitReason }
  | { type: "stopped" };

type State = "idle" | "starting" | "healthy" | "waiting" | "stopping" | "stopped";

export interface SupervisorOptions {
  /** The child's argv (`cortex neuron …`). */
  command: readonly string[];
  env: Record<string, string | undefined>;
  /** Resolves when the child answers `/health`; rejects (or throws) otherwise. One try. */
  probe: () => Promise<void>;
  backoff: BackoffPolicy;
  /** A start that has not answered `/health` after this long is killed and counts as failed. */
  startTimeoutMs: number;
  /** How long a SIGTERMed child may take to exit before it is SIGKILLed. */
  stopTimeoutMs: number;
  log: ConsolaInstance;
  /** Each line the child writes, already prefixed (childLogLine); default: the same stream of this process. */
  forward?: (stream: "stdout" | "stderr", line: string) => void;
  logFormat: LogFormat;
  now?: () => number;
}

/** Time between `/health` probes of a starting child. */
const PROBE_INTERVAL_MS = 100;
/** Lines of the child's stderr kept to explain a failed first start. */
const KEPT_LINES = 20;
const SPAWN_FAILED: ExitReason = { label: "spawn_failed", text: "could not be spawned" };

/**
 * A child's log line as the gateway writes it: prefixed in text, and in JSON
 * with `process` and `pid` fields added (a line that is not a JSON object is
 * wrapped), so the stream stays one format.
 */
export function childLogLine(line: string, format: LogFormat, pid: number): string {
  if (format === "text") return `[local-neuron ${pid}] ${line}`;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed))
      return JSON.stringify({ ...parsed, process: "local-neuron", pid });
  } catch {
    // not JSON: a native last line or a stray print; wrapped below
  }
  return JSON.stringify({
    time: new Date().toISOString(),
    level: "info",
    msg: line,
    process: "local-neuron",
    pid,
  });
}

export class LocalNeuronSupervisor {
  readonly #options: SupervisorOptions;
  readonly #now: () => number;
  readonly #listeners = new Set<(event: SupervisorEvent) => void>();
  #state: State = "idle";
  #child: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
  #attempt = 0;
  #failures = 0;
  #healthySince = 0;
  #timedOut = false;
  #everHealthy = false;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #lastLines: string[] = [];
  #firstStart = Promise.withResolvers<void>();
  #stopped: Promise<void> | undefined;
  /**
   * Last resort for a gateway that exits without stop() (an uncaught error): a child left
   * running would hold the port and the devices. A signal handler is stop()'s job.
   */
  readonly #onProcessExit = () => this.#child?.kill("SIGKILL");

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Starts the child; resolves when it answers `/health`, rejects when the first start fails. */
  start(): Promise<void> {
    if (this.#state !== "idle") throw new Error("the local neuron supervisor was already started");
    process.once("exit", this.#onProcessExit);
    this.#spawn();
    return this.#firstStart.promise;
  }

  /** The running child's pid (undefined between runs). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get state(): State {
    return this.#state;
  }

  /** Every event from now on, in order; returns the unsubscribe. */
  subscribe(listener: (event: SupervisorEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** SIGTERM, SIGKILL after stopTimeoutMs, and wait until the child is reaped. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#state = "stopping";
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => {
        this.#options.log.warn(
          `local neuron pid=${child.pid} did not exit ${this.#options.stopTimeoutMs} ms after SIGTERM: SIGKILL`,
        );
        child.kill("SIGKILL");
      }, this.#options.stopTimeoutMs);
      await child.exited;
      clearTimeout(timer);
    }
    this.#child = undefined;
    this.#state = "stopped";
    process.off("exit", this.#onProcessExit);
    this.#firstStart.reject(new Error("the local neuron was stopped before it started"));
    this.#emit({ type: "stopped" });
  }

  #emit(event: SupervisorEvent): void {
    for (const listener of this.#listeners) listener(event);
  }

  #spawn(): void {
    this.#state = "starting";
    this.#attempt += 1;
    this.#timedOut = false;
    this.#lastLines = [];
    const attempt = this.#attempt;
    const child = Bun.spawn([...this.#options.command], {
      env: this.#options.env,
      // Its own process group: a Ctrl-C in the terminal (SIGINT to the whole foreground group)
      // reaches the gateway only, which drains first and then stops the child itself.
      detached: true,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.#child = child;
    this.#options.log.info(`local neuron pid=${child.pid} started (attempt ${attempt})`);
    this.#emit({ type: "spawned", pid: child.pid, attempt });
    const drained = Promise.all([
      this.#forwardLines(child, "stdout", child.stdout),
      this.#forwardLines(child, "stderr", child.stderr),
    ]);
    // The exit is handled once its last lines are out, so the ERROR line follows the child's own.
    void child.exited.then(() => drained).then(() => this.#onExit(child, attempt));
    void this.#awaitHealthy(child, attempt);
  }

  async #forwardLines(
    child: Bun.Subprocess,
    stream: "stdout" | "stderr",
    source: ReadableStream<Uint8Array>,
  ): Promise<void> {
    const forward =
      this.#options.forward ?? ((to: "stdout" | "stderr", line: string) => process[to].write(`${line}\n`));
    const decoder = new TextDecoder();
    let pending = "";
    const emit = (line: string) => {
      if (line === "") return;
      if (stream === "stderr") {
        this.#lastLines.push(line);
        if (this.#lastLines.length > KEPT_LINES) this.#lastLines.shift();
      }
      forward(stream, childLogLine(line, this.#options.logFormat, child.pid));
    };
    try {
      for await (const chunk of source) {
        pending += decoder.decode(chunk, { stream: true });
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) emit(line.replace(/\r$/, ""));
      }
    } catch {
      // the pipe broke with the child; what was read has been forwarded
    }
    emit(pending + decoder.decode());
  }

  async #awaitHealthy(child: Bun.Subprocess, attempt: number): Promise<void> {
    const deadline = this.#now() + this.#options.startTimeoutMs;
    const current = () => this.#child === child && this.#state === "starting";
    while (current()) {
      try {
        await this.#options.probe();
        if (!current()) return;
        this.#state = "healthy";
        this.#healthySince = this.#now();
        this.#everHealthy = true;
        this.#options.log.info(`local neuron pid=${child.pid} is healthy`);
        this.#emit({ type: "healthy", pid: child.pid, attempt });
        this.#firstStart.resolve();
        return;
      } catch {
        // not listening yet
      }
      if (this.#now() >= deadline) {
        if (!current()) return;
        this.#timedOut = true;
        child.kill("SIGKILL");
        return;
      }
      await Bun.sleep(PROBE_INTERVAL_MS);
    }
  }

  #onExit(child: Bun.Subprocess, attempt: number): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    if (this.#state === "stopping" || this.#state === "stopped") return;
    const healthyMs = this.#state === "healthy" ? this.#now() - this.#healthySince : undefined;
    const reason = exitReason(
      this.#timedOut ? "health_timeout" : { code: child.exitCode, signal: child.signalCode },
    );
    this.#emit({ type: "exited", pid: child.pid, reason, healthyMs });
    if (!this.#everHealthy) {
      // The first start failed: a config or native problem a restart will not fix. Say why and give up.
      this.#state = "stopped";
      process.off("exit", this.#onProcessExit);
      const said = this.#lastLines.map((line) => line.replace(/^error:\s*/, "")).join("\n");
      this.#firstStart.reject(
        new Error(
          `the local neuron (attempt ${attempt}) ${reason.text} before it answered /health${said ? `:\n${said}` : ""}`,
        ),
      );
      return;
    }
    this.#scheduleRestart(`pid=${child.pid} ${reason.text}`, reason, healthyMs);
  }

  #scheduleRestart(what: string, reason: ExitReason, healthyMs: number | undefined): void {
    const decision = nextRestart(this.#options.backoff, this.#failures, healthyMs);
    this.#failures = decision.failures;
    this.#options.log.error(
      `local neuron ${what}${healthyMs === undefined ? " during its start" : ` after ${Math.round(healthyMs / 1000)} s healthy`}; restarting it in ${decision.delayMs} ms (${decision.failures} failure(s) in a row, reason=${reason.label})`,
    );
    this.#emit({
      type: "restart-scheduled",
      failures: decision.failures,
      delayMs: decision.delayMs,
      reason,
    });
    this.#state = "waiting";
    this.#restartTimer = setTimeout(() => {
      if (this.#state !== "waiting") return;
      try {
        this.#spawn();
      } catch (error) {
        // The executable went away (an upgrade in progress?): try again later, as after a failed start.
        this.#child = undefined;
        this.#scheduleRestart(`could not be spawned: ${errorMessage(error)}`, SPAWN_FAILED, undefined);
      }
    }, decision.delayMs);
  }
}
