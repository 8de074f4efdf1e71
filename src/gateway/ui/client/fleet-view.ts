/**
 * The fleet at a glance, from one `/admin/overview` answer: each node with
 * its state, devices and their memory as bars, the models loaded on it
 * (state, idle time, in-flight and queued, pin) with unload and pin
 * buttons; then the catalogue, with where each model is or could go and a
 * load form. Actions go through `act`, which shows their result.
 */
import type { CatalogueEntry, DashboardOverview, FleetNode } from "../../../core/admin-api.ts";
import type { DeviceInfo, LoadedModel } from "../../../core/neuron-api.ts";
import { h } from "./dom.ts";
import { bytes, duration } from "./format.ts";

type Pull = NonNullable<FleetNode["pulls"]>[number];

/** A model pull on the node (docs/MODELS-PULL.md): source, state, bytes, rate and ETA. */
function pullItem(pull: Pull): HTMLElement {
  const total = Math.max(pull.bytesTotal, 0);
  const progress = h("progress", { max: String(total || 1), "aria-label": `${pull.source} downloaded` });
  (progress as HTMLProgressElement).value = Math.min(pull.bytesDone, total || 1);
  const detail =
    pull.state === "failed"
      ? (pull.error ?? "failed")
      : `${bytes(pull.bytesDone)} of ${bytes(total)}${pull.rate > 0 && pull.state !== "done" ? `, ${bytes(pull.rate)}/s` : ""}${pull.etaS !== undefined && pull.state !== "done" ? `, ${duration(pull.etaS * 1000)} left` : ""}`;
  return h(
    "li",
    { "data-pull": pull.source, "data-state": pull.state },
    h("span", {}, pull.source),
    " ",
    h("span", { class: `state state-${pull.state}` }, pull.state),
    " ",
    progress,
    " ",
    h("span", { class: pull.state === "failed" ? "error" : "muted" }, detail),
  );
}

export type AdminAction = "load" | "unload" | "pin" | "unpin";
export type Act = (action: AdminAction, body: { model: string; node?: string }) => void;

/** An id fragment for a model or node name (ids keep focus across re-renders). */
const idOf = (...parts: string[]): string => parts.map((p) => p.replace(/[^A-Za-z0-9_-]/g, "_")).join("--");

function memoryBar(device: DeviceInfo): HTMLElement {
  const used = Math.max(0, device.memoryTotal - device.memoryFree);
  const share = device.memoryTotal > 0 ? used / device.memoryTotal : 0;
  const label = `${bytes(used)} of ${bytes(device.memoryTotal)} used`;
  // Through the CSSOM: the page's CSP refuses inline style attributes.
  const fill = h("div", { class: "bar-fill" });
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  return h(
    "div",
    { class: "device" },
    h(
      "span",
      { class: "device-name" },
      `${device.id} · ${device.name}`,
      device.poisoned ? " (poisoned)" : "",
    ),
    h(
      "div",
      {
        class: `bar${share > 0.9 ? " bar-high" : ""}`,
        role: "meter",
        "aria-label": `${device.id} memory`,
        "aria-valuemin": 0,
        "aria-valuemax": device.memoryTotal,
        "aria-valuenow": used,
        "aria-valuetext": label,
      },
      fill,
    ),
    h("span", { class: "device-memory" }, label),
  );
}

function loadedRow(node: FleetNode, model: LoadedModel, now: number, act: Act): HTMLElement {
  const idle = model.inFlight > 0 ? "busy" : duration(Math.max(0, now - model.lastUsed));
  return h(
    "tr",
    { "data-model": model.id },
    h("th", { scope: "row" }, model.id),
    h("td", {}, h("span", { class: `state state-${model.state}` }, model.state)),
    h("td", {}, model.devices.join(", ")),
    h("td", {}, bytes(model.memoryBytes)),
    h("td", {}, idle),
    h("td", { class: "num" }, model.inFlight),
    h("td", { class: "num" }, model.queued),
    h("td", {}, model.pinned ? "pinned" : ""),
    h(
      "td",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          id: idOf("unload", node.name, model.id),
          "aria-label": `Unload ${model.id} from ${node.name}`,
          onclick: () => act("unload", { model: model.id, node: node.name }),
        },
        "Unload",
      ),
      h(
        "button",
        {
          type: "button",
          id: idOf("pin", node.name, model.id),
          "aria-label": `${model.pinned ? "Unpin" : "Pin"} ${model.id}`,
          onclick: () => act(model.pinned ? "unpin" : "pin", { model: model.id }),
        },
        model.pinned ? "Unpin" : "Pin",
      ),
    ),
  );
}

function nodeCard(node: FleetNode, now: number, act: Act): HTMLElement {
  return h(
    "article",
    { class: "node", "aria-labelledby": idOf("node", node.name), "data-node": node.name },
    h(
      "header",
      {},
      h("h3", { id: idOf("node", node.name) }, node.name),
      h("span", { class: `state state-${node.state}` }, node.state),
      h("span", { class: "muted" }, node.endpoint),
      node.version ? h("span", { class: "muted" }, `v${node.version}`) : null,
      node.lastSeen ? h("span", { class: "muted" }, `seen ${duration(now - node.lastSeen)} ago`) : null,
    ),
    node.error ? h("p", { class: "error" }, node.error) : null,
    h("div", { class: "devices" }, node.devices.map(memoryBar)),
    node.pulls !== undefined && node.pulls.length > 0
      ? h(
          "section",
          { class: "pulls", "aria-label": `Model pulls on ${node.name}` },
          h("h4", {}, "Pulls"),
          h("ul", {}, node.pulls.map(pullItem)),
        )
      : null,
    node.loaded.length === 0
      ? h("p", { class: "muted" }, "No model loaded.")
      : h(
          "table",
          {},
          h("caption", { class: "sr-only" }, `Models loaded on ${node.name}`),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Model", "State", "Devices", "Memory", "Idle", "In flight", "Queued", "Pin", "Actions"].map(
                (c) => h("th", { scope: "col" }, c),
              ),
            ),
          ),
          h(
            "tbody",
            {},
            node.loaded.map((model) => loadedRow(node, model, now, act)),
          ),
        ),
  );
}

function catalogueRow(entry: CatalogueEntry, nodes: FleetNode[], act: Act): HTMLElement {
  const selectId = idOf("load-node", entry.id);
  const candidates =
    entry.cortex.servable_on.length > 0 ? entry.cortex.servable_on : nodes.map((n) => n.name);
  const loadedOn = entry.cortex.loaded_on.map((l) => `${l.node} (${l.state})`).join(", ");
  return h(
    "tr",
    { "data-model": entry.id },
    h(
      "th",
      { scope: "row" },
      entry.id,
      entry.cortex.pinned ? h("span", { class: "muted" }, " · pinned") : null,
    ),
    h("td", {}, h("span", { class: `state state-${entry.cortex.state}` }, entry.cortex.state)),
    h("td", {}, loadedOn || "—"),
    h("td", {}, entry.cortex.servable_on.join(", ") || "—"),
    h(
      "td",
      { class: "actions" },
      h("label", { for: selectId, class: "sr-only" }, `Node to load ${entry.id} on`),
      h(
        "select",
        { id: selectId },
        h("option", { value: "" }, "where the router picks"),
        candidates.map((name) => h("option", { value: name }, name)),
      ),
      h(
        "button",
        {
          type: "button",
          id: idOf("load", entry.id),
          "aria-label": `Load ${entry.id}`,
          onclick: () => {
            const node = (document.getElementById(selectId) as HTMLSelectElement | null)?.value ?? "";
            act("load", node === "" ? { model: entry.id } : { model: entry.id, node });
          },
        },
        "Load",
      ),
    ),
  );
}

export function renderFleet(overview: DashboardOverview, now: number, act: Act): Array<HTMLElement | null> {
  const nodes = overview.fleet.nodes;
  const queues = overview.queues.filter((q) => q.queued > 0 || q.inFlight > 0);
  return [
    h("h2", { id: "fleet-heading" }, "Nodes"),
    nodes.length === 0
      ? h("p", {}, "No nodes configured.")
      : h(
          "div",
          { class: "nodes" },
          nodes.map((n) => nodeCard(n, now, act)),
        ),
    queues.length === 0
      ? null
      : h(
          "p",
          { class: "muted" },
          "Gateway queues: ",
          queues.map((q) => `${q.model} ${q.inFlight} in flight, ${q.queued} queued`).join("; "),
        ),
    h("h2", { id: "catalogue-heading" }, "Models"),
    h(
      "table",
      { "aria-labelledby": "catalogue-heading", id: "catalogue" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Model", "State", "Loaded on", "Can go on", "Load"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      h(
        "tbody",
        {},
        overview.catalogue.map((entry) => catalogueRow(entry, nodes, act)),
      ),
    ),
  ];
}
