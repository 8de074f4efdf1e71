/** Pure renderers for `cortex status` and `cortex models ls`: data in, text out. */
import type { CatalogueEntry, FleetView } from "../core/admin-api.ts";
import { formatBytes } from "../core/config/parse-size.ts";

export function memoryBar(used: number, total: number, width = 20): string {
  if (total <= 0) return `[${" ".repeat(width)}]`;
  const filled = Math.min(width, Math.max(0, Math.round((used / total) * width)));
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function renderStatus(fleet: FleetView, now: number): string {
  const out: string[] = [];
  const up = fleet.nodes.filter((node) => node.state === "up").length;
  out.push(`cortex gateway ${fleet.gateway.version} — ${fleet.nodes.length} node(s), ${up} up`);
  out.push("");
  out.push(
    table(
      ["NODE", "STATE", "DEVICE", "MEMORY", "USED / TOTAL"],
      fleet.nodes.flatMap((node) => {
        const state = node.state + (node.error && node.state !== "up" ? ` (${node.error})` : "");
        if (node.devices.length === 0) return [[node.name, state, "-", "", ""]];
        return node.devices.map((device, i) => {
          const used = device.memoryTotal - device.memoryFree;
          return [
            i === 0 ? node.name : "",
            i === 0 ? state : "",
            `${device.id}${device.poisoned ? " POISONED" : ""} ${device.name}`,
            memoryBar(used, device.memoryTotal),
            `${formatBytes(used)} / ${formatBytes(device.memoryTotal)}`,
          ];
        });
      }),
    ),
  );
  const loaded = fleet.nodes.flatMap((node) => node.loaded.map((model) => ({ node: node.name, model })));
  out.push("");
  if (loaded.length === 0) out.push("No models loaded.");
  else
    out.push(
      table(
        ["MODEL", "NODE", "STATE", "DEVICES", "IDLE", "IN FLIGHT", "QUEUED", "MEMORY", "PINNED"],
        loaded.map(({ node, model }) => [
          model.id,
          node,
          model.state,
          model.devices.join(","),
          model.inFlight > 0 ? "busy" : formatDuration(now - model.lastUsed),
          String(model.inFlight),
          String(model.queued),
          formatBytes(model.memoryBytes),
          model.pinned ? "yes" : "",
        ]),
      ),
    );
  return out.join("\n");
}

export function renderCatalogue(entries: readonly CatalogueEntry[]): string {
  if (entries.length === 0) return "No models: configure [[models]] profiles or load a model on a neuron.";
  return table(
    ["MODEL", "STATE", "LOADED ON", "SERVABLE ON", "ALIASES", "PINNED"],
    entries.map((entry) => [
      entry.id,
      entry.cortex.state,
      entry.cortex.loaded_on.map((location) => `${location.node}(${location.state})`).join(", ") || "-",
      entry.cortex.servable_on.join(", ") || "-",
      entry.cortex.aliases.join(", "),
      entry.cortex.pinned ? "yes" : "",
    ]),
  );
}
