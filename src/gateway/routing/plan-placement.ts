/**
 * Where to load a model that is not loaded: pure, from the fleet view.
 *
 * A node qualifies when it is live, allowed by the profile's affinity (empty
 * = any), has the profile's file for it (`files[node] ?? file`) among its
 * available files, has enough usable devices, and can give each of the k
 * devices `need / k` bytes from free memory plus evictable victims (see
 * chooseVictims). A tensor-parallel group (k > 1) needs its devices to
 * itself: every model on a chosen device is a victim, and a device with a
 * model that cannot be evicted is not chosen. Candidates are ranked: no eviction first, then the most
 * free memory, then the lowest-priority victims, then the fewest victims.
 */
import type { ModelProfile } from "../../core/config/config-schema.ts";
import { CortexError } from "../../core/errors.ts";
import type { DeviceInfo } from "../../core/neuron-api.ts";
import type { FleetModel, FleetNodeView, FleetSnapshot } from "../fleet/fleet-types.ts";
import { chooseVictims, type EvictionStrategy, evictionOrder, isEvictable } from "./choose-victims.ts";
import { estimateMemoryBytes, formatBytes } from "./memory-need.ts";
import { profileFileOn } from "./profile-file.ts";

export type PlacementProfile = Pick<
  ModelProfile,
  "id" | "file" | "files" | "source" | "affinity" | "devices" | "vram_estimate" | "context_size" | "slots"
>;

export interface PlacementPlan {
  node: string;
  /** The file to load on that node. */
  file: string;
  /** The devices to load onto (k of them). */
  devices: string[];
  /** Models to unload first, in order. */
  victims: FleetModel[];
  /** Total bytes the model needs (all devices). */
  needBytes: number;
  /** Free bytes on the chosen devices before any eviction. */
  freeBytes: number;
}

export interface PlacementOptions {
  /** Nodes not to consider (a load there already failed). */
  exclude?: ReadonlySet<string>;
  /** Only this node (an admin load on a named node). */
  only?: string;
}

export type PlacementResult = { ok: true; plans: PlacementPlan[] } | { ok: false; error: CortexError };

/** The memory need on a given node (the file can differ per node, hence its size). */
export function memoryNeedOn(profile: PlacementProfile, node: FleetNodeView): number | undefined {
  const file = profileFileOn(profile, node);
  const available = node.available.find((candidate) => candidate.file === file);
  return available === undefined || available.problem !== undefined
    ? undefined
    : estimateMemoryBytes(profile, available.sizeBytes);
}

/** Every node the model could be loaded on now, best first; or why none. */
export function planPlacements(
  profile: PlacementProfile,
  fleet: FleetSnapshot,
  strategy: EvictionStrategy,
  options: PlacementOptions = {},
): PlacementResult {
  const plans: PlacementPlan[] = [];
  const refusals: string[] = [];
  let bestNow: Best | undefined;
  let bestLater: Best | undefined;
  let anyDown = false;
  let badFile = false;
  for (const node of fleet.nodes) {
    if (options.only !== undefined && node.name !== options.only) continue;
    if (options.exclude?.has(node.name)) {
      refusals.push(`${node.name}: already failed this load`);
      continue;
    }
    if (profile.affinity.length > 0 && !profile.affinity.includes(node.name)) continue;
    if (node.state !== "up" && node.state !== "degraded") {
      anyDown = true;
      refusals.push(`${node.name}: ${node.state}`);
      continue;
    }
    const copy = node.loaded.find((model) => model.id === profile.id && model.state !== "failed");
    if (copy?.state === "unloading") {
      // Being unloaded (an operator's forced unload, another replica's eviction): it can be loaded
      // again there in a moment, so a request is told to retry, never that the model does not exist.
      anyDown = true;
      refusals.push(`${node.name}: ${profile.id} is being unloaded there`);
      continue;
    }
    if (copy !== undefined) continue;
    const file = profileFileOn(profile, node);
    const problem = node.available.find((candidate) => candidate.file === file)?.problem;
    if (problem !== undefined) {
      // The neuron would refuse it (or, unchecked, crash on it): never sent a load.
      badFile = true;
      refusals.push(`${node.name}: ${problem}`);
      continue;
    }
    const need = memoryNeedOn(profile, node);
    if (need === undefined || file === undefined) {
      refusals.push(
        `${node.name}: no file ${JSON.stringify(file ?? profile.source)} in its models directory`,
      );
      continue;
    }
    const devices = node.devices.filter((device) => !device.poisoned);
    if (devices.length < profile.devices) {
      refusals.push(`${node.name}: ${devices.length} usable devices, needs ${profile.devices}`);
      continue;
    }
    const perDevice = need / profile.devices;
    const plan = planOnNode(node, devices, file, need, perDevice, profile.devices, strategy);
    if (plan !== undefined) plans.push(plan);
    const now = kthLargest(
      devices.map((device) => capacity(node, device, isEvictable)),
      profile.devices,
    );
    const later = kthLargest(
      devices.map((device) => capacity(node, device, (model) => !model.pinned && model.state !== "loading")),
      profile.devices,
    );
    // Compare by how short each node falls (its file, hence its need, may differ).
    if (bestNow === undefined || now - need > bestNow.bytes - bestNow.need)
      bestNow = { bytes: now, node: node.name, need };
    if (bestLater === undefined || later - need > bestLater.bytes - bestLater.need)
      bestLater = { bytes: later, node: node.name, need };
  }
  plans.sort(comparePlans);
  if (plans.length > 0) return { ok: true, plans };
  return { ok: false, error: noPlacement(profile, bestNow, bestLater, refusals, anyDown, badFile) };
}

/** The best plan, or the CortexError saying why there is none. */
export function planPlacement(
  profile: PlacementProfile,
  fleet: FleetSnapshot,
  strategy: EvictionStrategy,
  options: PlacementOptions = {},
): PlacementPlan {
  const result = planPlacements(profile, fleet, strategy, options);
  if (!result.ok) throw result.error;
  return result.plans[0]!;
}

interface DeviceOption {
  device: DeviceInfo;
  victims: FleetModel[];
}

function planOnNode(
  node: FleetNodeView,
  devices: readonly DeviceInfo[],
  file: string,
  need: number,
  perDevice: number,
  count: number,
  strategy: EvictionStrategy,
): PlacementPlan | undefined {
  const options: DeviceOption[] = [];
  for (const device of devices) {
    const onDevice = modelsOn(node, device.id);
    if (count > 1) {
      // A tensor-parallel group needs its devices to itself (the neuron refuses a member that
      // serves any model): everything on the device goes, whatever memory is free.
      const freed = onDevice.reduce((sum, model) => sum + share(model), device.memoryFree);
      if (onDevice.every(isEvictable) && freed >= perDevice)
        options.push({ device, victims: [...onDevice].sort(evictionOrder(strategy)) });
      continue;
    }
    const victims = chooseVictims(onDevice, perDevice - device.memoryFree, strategy, (model) => share(model));
    if (victims !== undefined) options.push({ device, victims });
  }
  if (options.length < count) return undefined;
  options.sort(
    (a, b) =>
      Number(a.victims.length > 0) - Number(b.victims.length > 0) ||
      b.device.memoryFree - a.device.memoryFree ||
      maxPriority(a.victims) - maxPriority(b.victims) ||
      a.device.index - b.device.index,
  );
  const chosen = options.slice(0, count);
  const victims = new Map<string, FleetModel>();
  for (const option of chosen) for (const victim of option.victims) victims.set(victim.id, victim);
  return {
    node: node.name,
    file,
    devices: chosen.map((option) => option.device.id),
    victims: [...victims.values()],
    needBytes: need,
    freeBytes: chosen.reduce((sum, option) => sum + option.device.memoryFree, 0),
  };
}

function comparePlans(a: PlacementPlan, b: PlacementPlan): number {
  return (
    Number(a.victims.length > 0) - Number(b.victims.length > 0) ||
    b.freeBytes - a.freeBytes ||
    maxPriority(a.victims) - maxPriority(b.victims) ||
    a.victims.length - b.victims.length ||
    a.node.localeCompare(b.node)
  );
}

function maxPriority(victims: readonly FleetModel[]): number {
  return victims.reduce((max, victim) => Math.max(max, victim.priority), Number.NEGATIVE_INFINITY);
}

function modelsOn(node: FleetNodeView, device: string): FleetModel[] {
  return node.loaded.filter((model) => model.devices.includes(device));
}

/** What unloading a model frees on each of its devices. */
function share(model: FleetModel): number {
  return model.memoryBytes / Math.max(1, model.devices.length);
}

/** Free memory on a device plus what unloading the models `counts` accepts would free. */
function capacity(node: FleetNodeView, device: DeviceInfo, counts: (model: FleetModel) => boolean): number {
  return modelsOn(node, device.id)
    .filter(counts)
    .reduce((sum, model) => sum + share(model), Math.max(0, device.memoryFree));
}

function kthLargest(values: number[], k: number): number {
  return [...values].sort((a, b) => b - a)[k - 1] ?? 0;
}

interface Best {
  /** Bytes per device the node could give. */
  bytes: number;
  node: string;
  /** Total bytes the model needs there. */
  need: number;
}

function noPlacement(
  profile: PlacementProfile,
  bestNow: Best | undefined,
  bestLater: Best | undefined,
  refusals: readonly string[],
  anyDown: boolean,
  badFile: boolean,
): CortexError {
  const where = refusals.length > 0 ? ` (${refusals.join("; ")})` : "";
  if (bestNow === undefined || bestLater === undefined) {
    if (badFile)
      return new CortexError("load_failed", `no live node can load ${profile.id}${where}`, {
        details: { model: profile.id },
      });
    const message = `no live node can load ${profile.id}${where || (profile.affinity.length > 0 ? ` (affinity: ${profile.affinity.join(", ")})` : " (no neurons)")}`;
    // A node that may come back is worth a retry; a fleet without the file is not.
    return anyDown || refusals.some((reason) => reason.endsWith("already failed this load"))
      ? new CortexError("unavailable", message, { retryAfterS: 5 })
      : new CortexError("model_not_found", message, { param: "model" });
  }
  const need = bestNow.need;
  const perDevice = profile.devices > 1 ? ` on each of ${profile.devices} devices` : "";
  const needText = formatBytes(need / profile.devices);
  const details = { needBytes: need, freeableBytes: bestNow.bytes, node: bestNow.node };
  if (bestLater.bytes >= bestLater.need / profile.devices)
    return new CortexError(
      "unavailable",
      `${profile.id} needs ${needText}${perDevice}; the most any node can free now is ${formatBytes(bestNow.bytes)} (${bestNow.node}), more once busy models finish`,
      { retryAfterS: 5, details },
    );
  return new CortexError(
    "insufficient_memory",
    `${profile.id} needs ${needText}${perDevice}; the most any node can free is ${formatBytes(bestNow.bytes)} (${bestNow.node})`,
    { details },
  );
}
