/**
 * The dashboard's entry point: asks the admin API for the fleet with the
 * token this tab holds (none on a loopback gateway without one), shows the
 * login form when it is refused, and otherwise polls the fleet, the series
 * and the tail every two seconds, re-rendering in place.
 */
import "./styles.css";
import type {
  DashboardOverview,
  RecentRequestsResponse,
  TimeSeriesResponse,
} from "../../../core/admin-api.ts";
import { adminGet, adminPost, ApiError, session } from "./api.ts";
import { renderCharts } from "./charts.ts";
import { h, swap } from "./dom.ts";
import { type Act, type AdminAction, renderFleet } from "./fleet-view.ts";
import { createPlayground } from "./playground.ts";
import { renderTail } from "./request-tail.ts";

const POLL_MS = 2_000;
const app = document.getElementById("app") as HTMLElement;

const connection = h("span", { id: "connection", class: "muted", role: "status" });
const signOut = h(
  "button",
  {
    type: "button",
    id: "sign-out",
    hidden: true,
    onclick: () => {
      session.clear();
      stop();
      showLogin("");
    },
  },
  "Sign out",
);
const header = h("header", { class: "top" }, h("h1", {}, "cortex"), connection, signOut);

let timer: ReturnType<typeof setTimeout> | undefined;
let generation = 0;
const stop = () => {
  generation += 1;
  clearTimeout(timer);
};

function showLogin(message: string): void {
  signOut.hidden = true;
  swap(connection, "");
  const form = h(
    "form",
    {
      id: "login",
      class: "login",
      onsubmit: (event: Event) => {
        event.preventDefault();
        session.setToken((document.getElementById("login-token") as HTMLInputElement).value);
        void start();
      },
    },
    h("h2", {}, "Sign in"),
    h("p", {}, "This gateway has an admin token (gateway.admin_token). The page keeps it for this tab only."),
    h("label", { for: "login-token" }, "Admin token"),
    h("input", { id: "login-token", type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit" }, "Sign in"),
    h("p", { id: "login-error", class: "error", role: "alert" }, message),
  );
  app.replaceChildren(header, h("main", {}, form));
  (document.getElementById("login-token") as HTMLInputElement).focus();
}

function showRefused(message: string): void {
  app.replaceChildren(header, h("main", {}, h("p", { class: "error", role: "alert" }, message)));
}

function showDashboard(first: DashboardOverview): void {
  signOut.hidden = session.token() === "";
  const fleet = h("section", { id: "fleet", "aria-labelledby": "fleet-heading" });
  const result = h("p", { id: "action-result", role: "status", "aria-live": "polite" });
  const chartModel = h("select", { id: "chart-model" }) as HTMLSelectElement;
  const charts = h("div", { id: "charts" });
  const tail = h("div", { id: "tail-region" });
  const playground = createPlayground();
  let overview = first;
  let series: TimeSeriesResponse | undefined;
  let chartModels = "";
  const run = generation;

  const act: Act = (action: AdminAction, body) => {
    const what = `${action} ${body.model}${body.node ? ` on ${body.node}` : ""}`;
    result.className = "pending";
    swap(result, `${what}…`);
    adminPost(`/admin/models/${action}`, body).then(
      (message) => {
        result.className = "ok";
        swap(result, message);
        void poll();
      },
      (error: unknown) => {
        result.className = "error";
        swap(result, `${what} failed: ${error instanceof Error ? error.message : String(error)}`);
        if (error instanceof ApiError && error.status === 401) {
          stop();
          showLogin("The admin token was refused.");
        }
      },
    );
  };

  const renderAll = (recent?: RecentRequestsResponse) => {
    swap(fleet, renderFleet(overview, Date.now(), act));
    playground.update(
      overview.catalogue.map((entry) => entry.id),
      overview.apiKeyRequired,
    );
    if (series !== undefined) {
      // Options are replaced only when the models change: replacing them closes an open picker.
      const models = series.models.map((m) => m.model);
      if (models.join("\n") !== chartModels) {
        chartModels = models.join("\n");
        const chosen = chartModel.value;
        chartModel.replaceChildren(
          h("option", { value: "" }, "All models"),
          ...models.map((model) => h("option", { value: model }, model)),
        );
        chartModel.value = models.includes(chosen) ? chosen : "";
      }
      swap(charts, renderCharts(series, chartModel.value));
    }
    if (recent !== undefined) swap(tail, renderTail(recent.requests));
    swap(
      connection,
      `gateway ${overview.fleet.gateway.version} · updated ${new Date().toLocaleTimeString([], { hour12: false })}`,
    );
  };

  async function poll(): Promise<void> {
    try {
      const [next, nextSeries, recent] = await Promise.all([
        adminGet<DashboardOverview>("/admin/overview"),
        adminGet<TimeSeriesResponse>("/admin/timeseries"),
        adminGet<RecentRequestsResponse>("/admin/requests/recent?limit=50"),
      ]);
      if (run !== generation) return;
      overview = next;
      series = nextSeries;
      renderAll(recent);
    } catch (error) {
      if (run !== generation) return;
      if (error instanceof ApiError && error.status === 401) {
        stop();
        showLogin("The admin token was refused.");
        return;
      }
      swap(connection, `not reachable: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  const loop = async () => {
    await poll();
    if (run === generation) timer = setTimeout(loop, POLL_MS);
  };
  chartModel.addEventListener("change", () => {
    if (series !== undefined) swap(charts, renderCharts(series, chartModel.value));
  });

  app.replaceChildren(
    header,
    h(
      "main",
      {},
      fleet,
      result,
      h(
        "section",
        { id: "charts-section", "aria-labelledby": "charts-heading" },
        h("h2", { id: "charts-heading" }, "Last 15 minutes"),
        h("label", { for: "chart-model" }, "Chart model "),
        chartModel,
        charts,
      ),
      h(
        "section",
        { id: "tail-section", "aria-labelledby": "tail-heading" },
        h("h2", { id: "tail-heading" }, "Recent requests"),
        tail,
      ),
      h(
        "section",
        { id: "playground", "aria-labelledby": "playground-heading" },
        h("h2", { id: "playground-heading" }, "Playground"),
        playground.element,
      ),
    ),
  );
  renderAll();
  void loop();
}

async function start(): Promise<void> {
  stop();
  try {
    showDashboard(await adminGet<DashboardOverview>("/admin/overview"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401)
      showLogin(session.token() === "" ? "" : "The admin token was refused.");
    else
      showRefused(
        `The admin API refused this page: ${error instanceof Error ? error.message : String(error)}`,
      );
  }
}

void start();
