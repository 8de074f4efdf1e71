/**
 * Neurons found in DNS (`[discovery] dns`): a headless Kubernetes Service
 * (one A/AAAA record per ready pod), an SRV name, or Consul's DNS. Every
 * `interval_s` the name is resolved again; an address that appears is asked
 * its node name (`/health` `node`) and joins the fleet under it, an address
 * that vanishes is retired (no new requests, its in-flight ones finish). A
 * node's identity is its name, not its address: a pod restarted with a new
 * IP keeps its place, pins and cache affinity.
 *
 * The resolution is the only side effect here besides the fleet calls; the
 * decisions (what joined, moved, left) are `planRound`, a pure function.
 */
import { promises as dns } from "node:dns";
import { errorMessage } from "../../core/errors.ts";
import { logger } from "../../core/logger.ts";
import { NeuronClient } from "../neuron-client.ts";

const log = logger("discovery");

export type DnsSpec = { kind: "address"; name: string; port: number } | { kind: "srv"; name: string };

/** `discovery.dns`: "name:port" (A/AAAA) or "_service._proto.name" (SRV). */
export function parseDnsSpec(spec: string): DnsSpec {
  if (spec.startsWith("_")) return { kind: "srv", name: spec };
  const at = spec.lastIndexOf(":");
  return { kind: "address", name: spec.slice(0, at), port: Number(spec.slice(at + 1)) };
}

export interface DnsLookup {
  /** Every A and AAAA address of `name`. */
  addresses(name: string): Promise<string[]>;
  srv(name: string): Promise<Array<{ name: string; port: number }>>;
}

/** Codes that mean "the name has no such records": an answer (no neurons), not a failure. */
const NO_RECORDS = new Set(["ENOTFOUND", "ENODATA", "NOTFOUND", "NODATA"]);

function isNoRecords(error: unknown): boolean {
  return NO_RECORDS.has(String((error as { code?: unknown } | null)?.code));
}

/** `query`'s records, or none where the name has none of that kind; other failures stay failures. */
async function recordsOrNone<T>(query: Promise<T[]>): Promise<T[]> {
  try {
    return await query;
  } catch (error) {
    if (isNoRecords(error)) return [];
    throw error;
  }
}

/** The system resolver (getaddrinfo for addresses, as every other program on the host resolves). */
export function systemLookup(): DnsLookup {
  return {
    async addresses(name) {
      return (await recordsOrNone(dns.lookup(name, { all: true }))).map((entry) => entry.address);
    },
    srv: (name) => recordsOrNone(dns.resolveSrv(name)),
  };
}

/** A given DNS server (`discovery.dns_server`). */
export function serverLookup(server: string): DnsLookup {
  const resolver = new dns.Resolver();
  resolver.setServers([server]);
  return {
    async addresses(name) {
      const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
      if (v4.status === "fulfilled" && v6.status === "fulfilled") return [...v4.value, ...v6.value];
      // One family answered: the other one's refusal or absence means no records of that kind.
      if (v4.status === "fulfilled") return v4.value;
      if (v6.status === "fulfilled") return v6.value;
      if (isNoRecords(v4.reason)) return [];
      throw v4.reason;
    },
    srv: (name) => recordsOrNone(resolver.resolveSrv(name)),
  };
}

function endpointOf(host: string, port: number): string {
  const bare = host.endsWith(".") ? host.slice(0, -1) : host;
  return `http://${bare.includes(":") ? `[${bare}]` : bare}:${port}`;
}

/** The neuron endpoints the name resolves to now, sorted; throws when the resolver failed. */
export async function resolveEndpoints(spec: DnsSpec, lookup: DnsLookup): Promise<string[]> {
  const endpoints = new Set<string>();
  if (spec.kind === "address") {
    for (const address of await lookup.addresses(spec.name)) endpoints.add(endpointOf(address, spec.port));
  } else {
    for (const record of await lookup.srv(spec.name))
      for (const address of await lookup.addresses(record.name))
        endpoints.add(endpointOf(address, record.port));
  }
  return [...endpoints].sort();
}

/** A name usable as a node name (metrics label, `affinity` entry). */
export function nodeName(reported: string): string {
  const cleaned = reported.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return cleaned === "" ? "node" : cleaned.slice(0, 128);
}

export interface RoundPlan {
  /** Endpoints that joined, under the node name they will have. */
  added: Array<{ endpoint: string; name: string }>;
  /** Nodes that answer at a new endpoint (the old one vanished). */
  moved: Array<{ endpoint: string; name: string }>;
  /** Nodes whose endpoint vanished (and that did not move). */
  retired: string[];
  /** The members after the round: endpoint → node name. */
  members: Map<string, string>;
}

/**
 * One discovery round's decisions. `members` is endpoint → node name before
 * the round; `resolved` the endpoints DNS gives now; `probed` the node name
 * each new endpoint reported (an endpoint that could not be asked is left
 * out and tried again next round); `taken` names already used by static
 * `[[neurons]]`. A name already held by another live endpoint (two neurons
 * claiming one node) gets the endpoint appended, so neither is lost.
 */
export function planRound(
  members: ReadonlyMap<string, string>,
  resolved: readonly string[],
  probed: ReadonlyMap<string, string>,
  taken: ReadonlySet<string>,
): RoundPlan {
  const live = new Set(resolved);
  const next = new Map<string, string>();
  const vanished = new Map<string, string>(); // name → endpoint
  for (const [endpoint, name] of members) {
    if (live.has(endpoint)) next.set(endpoint, name);
    else vanished.set(name, endpoint);
  }
  const used = new Set([...taken, ...next.values()]);
  const plan: RoundPlan = { added: [], moved: [], retired: [], members: next };
  for (const endpoint of resolved) {
    if (next.has(endpoint)) continue;
    const reported = probed.get(endpoint);
    if (reported === undefined) continue;
    let name = nodeName(reported);
    if (vanished.has(name)) {
      vanished.delete(name);
      plan.moved.push({ endpoint, name });
    } else {
      if (used.has(name)) name = nodeName(`${name}-${new URL(endpoint).host}`);
      plan.added.push({ endpoint, name });
    }
    used.add(name);
    next.set(endpoint, name);
  }
  plan.retired = [...vanished.keys()];
  return plan;
}

export interface DiscoveryFleet {
  addNode(neuron: { name: string; endpoint: string; token: string }): void;
  moveNode(neuron: { name: string; endpoint: string; token: string }): void;
  retire(node: string, reason: string): Promise<void>;
}

export interface DnsDiscoveryOptions {
  spec: string;
  intervalMs: number;
  lookup: DnsLookup;
  /** Bearer token of the discovered neurons. */
  token: string;
  fleet: DiscoveryFleet;
  /** Names of the static `[[neurons]]`. */
  taken: ReadonlySet<string>;
  /** Asks an endpoint its node name; default GET /health. */
  probe?: (endpoint: string, token: string) => Promise<string>;
}

/** The node name an endpoint's /health reports, read by the client the fleet polls with. */
async function probeHealth(endpoint: string, token: string): Promise<string> {
  return (await new NeuronClient({ name: endpoint, endpoint, token }).health()).node;
}

export class DnsDiscovery {
  readonly #options: DnsDiscoveryOptions;
  readonly #spec: DnsSpec;
  #members = new Map<string, string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #round: Promise<void> | undefined;
  #stopped = true;
  #lastProblem = "";
  readonly #listeners = new Set<(members: ReadonlyMap<string, string>) => void>();

  constructor(options: DnsDiscoveryOptions) {
    this.#options = options;
    this.#spec = parseDnsSpec(options.spec);
  }

  /** Endpoint → node name, as of the last round. */
  get members(): ReadonlyMap<string, string> {
    return this.#members;
  }

  /** Called after every round (tests and tools wait on it instead of polling). */
  onRound(listener: (members: ReadonlyMap<string, string>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Runs a round now, then one every interval. */
  start(): void {
    this.#stopped = false;
    void this.refresh();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** One round now (or the one running); never rejects. */
  refresh(): Promise<void> {
    this.#round ??= this.#runRound().finally(() => {
      this.#round = undefined;
      if (!this.#stopped) {
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => void this.refresh(), this.#options.intervalMs);
      }
    });
    return this.#round;
  }

  async #runRound(): Promise<void> {
    const { fleet, token } = this.#options;
    let resolved: string[];
    try {
      resolved = await resolveEndpoints(this.#spec, this.#options.lookup);
    } catch (error) {
      // A resolver that fails is no news about the neurons: keep them, say so once.
      this.#problem(
        `cannot resolve ${this.#options.spec}: ${errorMessage(error)}; keeping the nodes found before`,
      );
      return;
    }
    const probe = this.#options.probe ?? probeHealth;
    const fresh = resolved.filter((endpoint) => !this.#members.has(endpoint));
    const probed = new Map<string, string>();
    await Promise.all(
      fresh.map(async (endpoint) => {
        try {
          probed.set(endpoint, await probe(endpoint, token));
        } catch (error) {
          this.#problem(
            `${endpoint} (from ${this.#options.spec}) did not tell its node name: ${errorMessage(error)}`,
          );
        }
      }),
    );
    const plan = planRound(this.#members, resolved, probed, this.#options.taken);
    this.#members = plan.members;
    for (const { endpoint, name } of plan.moved) {
      log.info(`node ${name} moved to ${endpoint}`);
      fleet.moveNode({ name, endpoint, token });
    }
    for (const { endpoint, name } of plan.added) {
      log.info(`node ${name} found at ${endpoint}`);
      fleet.addNode({ name, endpoint, token });
    }
    for (const name of plan.retired) {
      log.info(`node ${name} is gone from ${this.#options.spec}: retiring it (its running requests finish)`);
      void fleet.retire(name, `gone from DNS (${this.#options.spec})`);
    }
    if (probed.size === fresh.length) this.#lastProblem = "";
    for (const listener of this.#listeners) listener(this.#members);
  }

  #problem(message: string): void {
    if (message === this.#lastProblem) return;
    this.#lastProblem = message;
    log.warn(message);
  }
}
