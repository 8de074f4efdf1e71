/** The newest requests, from `/admin/requests/recent`, as a table. */
import type { RecentRequest } from "../../../core/admin-api.ts";
import { h } from "./dom.ts";
import { clock, duration } from "./format.ts";

const COLUMNS = [
  "Time",
  "Request id",
  "Model",
  "Node",
  "Dialect",
  "Status",
  "Prompt",
  "Cached",
  "Generated",
  "TTFT",
  "Duration",
];

const count = (n: number | undefined): string => (n === undefined ? "" : String(n));

export function renderTail(requests: RecentRequest[]): HTMLElement {
  if (requests.length === 0) return h("p", { class: "muted" }, "No requests yet.");
  return h(
    "table",
    { id: "tail", "aria-labelledby": "tail-heading" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        COLUMNS.map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    h(
      "tbody",
      {},
      requests.map((r) =>
        h(
          "tr",
          { "data-request-id": r.requestId, class: r.status >= 400 ? "failed" : "" },
          h("td", {}, clock(r.at)),
          h("td", { class: "mono" }, r.requestId),
          h("td", {}, r.model),
          h("td", {}, r.node),
          h("td", {}, r.dialect, r.stream ? " (stream)" : ""),
          h("td", { title: r.error ?? "" }, r.status, r.error ? ` ${r.error}` : ""),
          h("td", { class: "num" }, count(r.promptTokens)),
          h("td", { class: "num" }, count(r.cachedTokens)),
          h("td", { class: "num" }, count(r.generatedTokens)),
          h("td", { class: "num" }, r.ttftMs === undefined ? "" : duration(r.ttftMs)),
          h("td", { class: "num" }, duration(r.durationMs)),
        ),
      ),
    ),
  );
}
