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

type NeuronTarget = Pick<NeuronRef, "name" | "endpoint" | "token">;

export interface FleetOptions {
  clients: readonly NeuronApi[];
  /** Builds the client of a node that joins later (discovery). */
  clientFactory?: (neuron: NeuronTarget) => NeuronApi;
  pollIntervalMs: number;
  poller?: Omit<PollerOptions, "intervalMs">;
  now?: () => number;
  evictions?: EvictionLog;
}

export interface FleetFromConfigOptions {
  /** Neurons to use instead of `[[neurons]]` (the gateway's embedded neuron). */
  neurons?: readonly NeuronTarget[];
  /** Builds each client; tests inject fakes. */
  clientFactory?: (neuron: NeuronTarget) => NeuronApi;
  poller?: Omit<PollerOptions, "intervalMs">;
  now?: () => number;
}

export class Fleet {
  readonly state: FleetState;
  readonly evictions: EvictionLog;
  readonly #clients = new Map<string, NeuronApi>();
  readonly #pollers = new Map<string, NodePoller>();
  readonly #options: FleetOptions;
  #started = false;

  static fromConfig(config: LoadedConfig, options: FleetFromConfigOptions = {}): Fleet {
    const gateway = config.file.gateway;
    const neurons = options.neurons ?? config.file.neurons;
    const factory: (neuron: NeuronTarget) => NeuronApi =
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
      clientFactory: factory,
      pollIntervalMs: gateway.poll_interval_ms,
      ...(options.poller === undefined ? {} : { poller: options.poller }),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
  }

  constructor(options: FleetOptions) {
    this.#options = options;
    this.evictions = options.evictions ?? new EvictionLog();
    this.state = new FleetState({
      nodes: [],
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    for (const client of options.clients) this.#attach(client);
  }

  /** Starts every poller (each polls at once, then on its interval). */
  start(): void {
    this.#started = true;
    for (const poller of this.#pollers.values()) poller.start();
  }

  stop(): void {
    this.#started = false;
    for (const poller of this.#pollers.values()) poller.stop();
  }

  /** A node found by discovery joins: polled at once, routed to once a poll says it is up. */
  addNode(neuron: NeuronTarget): void {
    const factory = this.#options.clientFactory;
    if (factory === undefined) throw new Error("this fleet cannot add nodes: no client factory");
    const poller = this.#attach(factory(neuron));
    if (this.#started) poller.start();
  }

  /**
   * The same node answers at a new address (a pod restarted with a new IP):
   * a new client and poller, the same name and so the same place in routing.
   */
  moveNode(neuron: NeuronTarget): void {
    const factory = this.#options.clientFactory;
    if (factory === undefined) throw new Error("this fleet cannot move nodes: no client factory");
    this.#pollers.get(neuron.name)?.stop();
    const client = factory(neuron);
    this.#clients.set(neuron.name, client);
    const poller = new NodePoller(client, this.state, {
      ...this.#options.poller,
      intervalMs: this.#options.pollIntervalMs,
    });
    this.#pollers.set(neuron.name, poller);
    this.state.setEndpoint(neuron.name, neuron.endpoint);
    if (this.#started) poller.start();
  }

  /**
   * A node left discovery: no new requests or loads go there at once; it
   * leaves the fleet when what this gateway runs there has finished.
   */
  async retire(node: string, reason: string): Promise<void> {
    if (!this.state.has(node)) return;
    this.#pollers.get(node)?.stop();
    this.state.retire(node, reason);
    if (this.state.busy(node))
      await new Promise<void>((resolve) => {
        const unsubscribe = this.state.onChange((changed) => {
          if (changed !== node || this.state.busy(node)) return;
          unsubscribe();
          resolve();
        });
      });
    this.state.removeNode(node);
    this.#clients.delete(node);
    this.#pollers.delete(node);
  }

  #attach(client: NeuronApi): NodePoller {
    this.state.addNode({ name: client.name, endpoint: client.endpoint });
    this.#clients.set(client.name, client);
    const poller = new NodePoller(client, this.state, {
      ...this.#options.poller,
      intervalMs: this.#options.pollIntervalMs,
    });
    this.#pollers.set(client.name, poller);
    return poller;
  }

  /** Polls every node now; resolves when all have answered or failed. */
  async refreshAll(): Promise<void> {
    await Promise.all([...this.#pollers.values()].map((poller) => poller.refresh()));
  }

  /** Re-reads one node now (after a load or unload); never rejects. A node that left: nothing to read. */
  refresh(node: string): Promise<void> {
    return this.#pollers.get(node)?.refresh() ?? Promise.resolve();
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
        {
          id: modelId,
          ...(options.force ? { force: true } : {}),
          // An eviction, not an operator's unload: the neuron keeps a copy another replica just loaded.
          ...(options.reason === "admin" ? {} : { evict: true }),
        },
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
}
