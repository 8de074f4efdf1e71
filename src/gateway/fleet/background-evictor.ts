/**
 * Runs the idle-TTL and defrag policies against the fleet view on a timer:
 * unloads models idle past `idle_ttl_s` (reason idle_ttl) and recycles idle
 * devices past `defrag_after_cycles`. One pass at a time; a failed call is
 * logged and retried on a later pass (the next poll shows what happened).
 * Two gateway replicas may both act on the same idle model; the second
 * unload finds it gone (404), which is fine.
 */
import { logger } from "../../core/logger.ts";
import { devicesToRecycle } from "../routing/defrag-policy.ts";
import { idleModelsToUnload } from "../routing/idle-policy.ts";
import type { Fleet } from "./fleet.ts";

export interface BackgroundEvictorOptions {
  idleTtlS: number;
  defragAfterCycles: number;
  /** Time between passes. Default: 5 s. */
  intervalMs?: number;
}

export class BackgroundEvictor {
  readonly #fleet: Fleet;
  readonly #options: BackgroundEvictorOptions;
  readonly #log = logger("evictor");
  #timer: ReturnType<typeof setInterval> | undefined;
  #pass: Promise<void> | undefined;
  #recycles = 0;

  constructor(fleet: Fleet, options: BackgroundEvictorOptions) {
    this.#fleet = fleet;
    this.#options = options;
  }

  /** Device recycles so far. Evictions by reason are `fleet.evictions.counts()`. */
  get recycles(): number {
    return this.#recycles;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    if (this.#options.idleTtlS <= 0 && this.#options.defragAfterCycles <= 0) return;
    this.#timer = setInterval(() => void this.runOnce(), this.#options.intervalMs ?? 5_000);
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One pass of both policies; concurrent calls share the pass under way. */
  runOnce(): Promise<void> {
    this.#pass ??= this.#run().finally(() => {
      this.#pass = undefined;
    });
    return this.#pass;
  }

  async #run(): Promise<void> {
    const stale = idleModelsToUnload(this.#fleet.view(), this.#options.idleTtlS);
    // Last use moves between polls: a model used since the last one looks idle. Decide on a fresh read.
    if (stale.length > 0)
      await Promise.all(
        [...new Set(stale.map((idle) => idle.node))].map((node) => this.#fleet.refresh(node)),
      );
    for (const { node, model, idleMs } of idleModelsToUnload(this.#fleet.view(), this.#options.idleTtlS)) {
      try {
        await this.#fleet.unload(node, model.id, {
          reason: "idle_ttl",
          detail: `idle ${Math.round(idleMs / 1000)} s, ttl ${this.#options.idleTtlS} s`,
        });
      } catch (error) {
        this.#log.warn(`idle unload of ${model.id} on ${node} failed: ${(error as Error).message}`);
      }
    }
    // Re-read the view: the unloads above may have left a device idle.
    for (const { node, device } of devicesToRecycle(this.#fleet.view(), this.#options.defragAfterCycles)) {
      try {
        await this.#fleet.recycle(node, device.id);
        this.#recycles += 1;
        this.#log.info(`recycled ${device.id} on ${node} after ${device.loadCycles} load/unload cycles`);
      } catch (error) {
        this.#log.warn(`recycling ${device.id} on ${node} failed: ${(error as Error).message}`);
      }
    }
  }
}
