/**
 * The fleet as the gateway holds it: one NeuronClient and one NodePoller per
 * configured neuron over a shared FleetState, plus the lifecycle calls that
 * change a node (unload, pin, recycle) followed by an immediate re-read, so
 * the next routing decision sees the change. See FleetState for why the
 * neurons, not the gateway, are the source of truth.
 */
import type { FleetView } from "../../core/admin-api.ts";
import type { NeuronRef } from "../../core/config/config-schema.ts";
import type { LoadedConfig } from "../../core/config/load-config.ts";
import { CortexError } from "../../core/errors.ts";
import { isNetworkFailure, type NeuronApi, NeuronClient } from "../neuron-client.ts";
import { EvictionLog, type EvictionReason } from "./eviction-log.ts";
import { FleetState } from "./fleet-state.ts";
import type { FleetSnapshot } from "./fleet-types.ts";
import type { NodeStateListener } from "./node-state.ts";
import { NodePoller, type PollerOptions } from "./poller.ts";

export interface FleetOptions {
  clients: readonly NeuronApi[];
  pollIntervalMs: number;
  poller?: Omit<PollerOptions, "intervalMs">;
  now?: () => number;
  evictions?: EvictionLog;
}

export interface FleetFromConfigOptions {
  /** Neurons to use instead of `[[neurons]]` (the gateway's embedded neuron). */
  neurons?: readonly Pick<NeuronRef, "name" | "endpoint" | "token">[];
  /** Builds each client; tests inject fakes. */
  clientFactory?: (neuron: Pick<NeuronRef, "name" | "endpoint" | "token">) => NeuronApi;
  poller?: Omit<PollerOptions, "intervalMs">;
  now?: () => number;
}

export class Fleet {
  readonly state: FleetState;
  readonly evictions: EvictionLog;
  readonly #clients = new Map<string, NeuronApi>();
  readonly #pollers = new Map<string, NodePoller>();

  static fromConfig(config: LoadedConfig, options: FleetFromConfigOptions = {}): Fleet {
    const gateway = config.file.gateway;
    const neurons = options.neurons ?? config.file.neurons;
    const factory =
      options.clientFactory ??
      ((neuron) =>
        new NeuronClient({
          name: neuron.name,
          endpoint: neuron.endpoint,
          token: neuron.token,
          lifecycleTimeoutMs: gateway.load_timeout_s * 1000,
        }));
    return new Fleet({
      clients: neurons.map(factory),
      pollIntervalMs: gateway.poll_interval_ms,
      ...(options.poller === undefined ? {} : { poller: options.poller }),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
  }

  constructor(options: FleetOptions) {
    this.evictions = options.evictions ?? new EvictionLog();
    this.state = new FleetState({
      nodes: options.clients.map((client) => ({ name: client.name, endpoint: client.endpoint })),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    for (const client of options.clients) {
      this.#clients.set(client.name, client);
      this.#pollers.set(
        client.name,
        new NodePoller(client, this.state, { ...options.poller, intervalMs: options.pollIntervalMs }),
      );
    }
  }

  /** Starts every poller (each polls at once, then on its interval). */
  start(): void {
    for (const poller of this.#pollers.values()) poller.start();
  }

  stop(): void {
    for (const poller of this.#pollers.values()) poller.stop();
  }

  /** Polls every node now; resolves when all have answered or failed. */
  async refreshAll(): Promise<void> {
    await Promise.all([...this.#pollers.values()].map((poller) => poller.refresh()));
  }

  /** Re-reads one node now (after a load or unload); never rejects. */
  refresh(node: string): Promise<void> {
    return this.#poller(node).refresh();
  }

  client(node: string): NeuronApi {
    const client = this.#clients.get(node);
    if (client === undefined) throw new CortexError("not_found", `no neuron named ${JSON.stringify(node)}`);
    return client;
  }

  nodeNames(): string[] {
    return this.state.nodeNames();
  }

  /** The routing view (see FleetState.view). */
  view(): FleetSnapshot {
    return this.state.view();
  }

  /** The `/admin/fleet` body. */
  fleetView(gateway: { version: string; startedAt: number }): FleetView {
    return { gateway, nodes: this.state.fleetNodes() };
  }

  onStateChange(listener: NodeStateListener): () => void {
    return this.state.onStateChange(listener);
  }

  /**
   * A call to `node` failed (a proxied request before its first byte, a
   * load): a node that could not be reached leaves routing until it answers a
   * poll again; any other failure only triggers a re-read.
   */
  reportFailure(node: string, error: CortexError): void {
    if (isNetworkFailure(error)) this.state.markDown(node, error.message);
    void this.refresh(node);
  }

  /**
   * Unloads a model (waiting for its in-flight work unless `force`), records
   * the eviction with its reason and re-reads the node. A model already gone
   * (404) counts as done: another gateway replica may have unloaded it.
   */
  async unload(
    node: string,
    modelId: string,
    options: { reason: EvictionReason; detail?: string; force?: boolean; signal?: AbortSignal },
  ): Promise<void> {
    const end = this.state.beginUnload(node, modelId);
    try {
      await this.client(node).unload(
        { id: modelId, ...(options.force ? { force: true } : {}) },
        { signal: options.signal },
      );
      this.evictions.record({
        node,
        model: modelId,
        reason: options.reason,
        ...(options.detail === undefined ? {} : { detail: options.detail }),
      });
    } catch (error) {
      if (!(error instanceof CortexError && error.status === 404)) throw error;
    } finally {
      end();
    }
    this.state.applyUnloaded(node, modelId);
    void this.refresh(node);
  }

  async pin(node: string, modelId: string, pinned: boolean): Promise<void> {
    await this.client(node).pin({ id: modelId, pinned });
    await this.refresh(node);
  }

  async recycle(node: string, device: string): Promise<void> {
    await this.client(node).recycle({ device });
    await this.refresh(node);
  }

  #poller(node: string): NodePoller {
    const poller = this.#pollers.get(node);
    if (poller === undefined) throw new CortexError("not_found", `no neuron named ${JSON.stringify(node)}`);
    return poller;
  }
}
