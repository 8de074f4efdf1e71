/**
 * Issue 20: the JSON the dashboard reads (`/admin/overview`,
 * `/admin/timeseries`, `/admin/requests/recent`) over a real neuron, held to
 * its zod shapes, and the page's own routes: behind the admin token like the
 * rest of the admin API, loopback-only without one, refused cross-site, and
 * sent with a CSP that keeps the page from being framed or loading anything
 * but its own assets.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DashboardOverview, RecentRequestsResponse, TimeSeriesResponse } from "../../src/core/admin-api.ts";
import { chat, messages } from "./helpers/gateway-requests.ts";
import { configToml, profile, RealFleet, type TestGateway } from "./helpers/real-fleet.ts";

const KEY = "sk-dash";
const ADMIN = "dash-admin";
const admin = { authorization: `Bearer ${ADMIN}` };

let fleet: RealFleet;
let guarded: TestGateway;
let open: TestGateway;

beforeAll(async () => {
  fleet = await RealFleet.start([{ name: "n1", files: ["a.gguf"] }]);
  guarded = await fleet.gateway({
    toml: configToml({
      gateway: { api_keys: [KEY], admin_token: ADMIN },
      models: [profile("alpha", "a.gguf")],
    }),
  });
  open = await fleet.gateway({ toml: configToml({ models: [profile("alpha", "a.gguf")] }) });
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
});

async function get(gateway: TestGateway, path: string, headers: Record<string, string> = admin) {
  return fetch(`${gateway.url}${path}`, { headers });
}

describe("the dashboard's JSON", () => {
  test("overview: the nodes, the catalogue with where each model can go, and whether /v1 wants a key", async () => {
    const response = await get(guarded, "/admin/overview");
    expect(response.status).toBe(200);
    const overview = DashboardOverview.parse(await response.json());
    expect(overview.fleet.nodes.map((n) => [n.name, n.state])).toEqual([["n1", "up"]]);
    expect(overview.fleet.nodes[0]?.devices.length).toBeGreaterThan(0);
    const alpha = overview.catalogue.find((entry) => entry.id === "alpha");
    expect(alpha?.cortex.servable_on).toEqual(["n1"]);
    expect(overview.apiKeyRequired).toBe(true);
    expect(
      DashboardOverview.parse(await (await get(open, "/admin/overview", {})).json()).apiKeyRequired,
    ).toBe(false);
  });

  test("a finished request is first in the tail, with its tokens and times, and counted in the series", async () => {
    const requestId = `dash-${crypto.randomUUID()}`;
    const answer = await chat(guarded.url, "alpha", {
      stream: true,
      headers: { authorization: `Bearer ${KEY}`, "x-request-id": requestId },
      extra: { stream_options: { include_usage: true } },
    });
    expect(answer.status).toBe(200);
    await answer.text();
    const recent = RecentRequestsResponse.parse(await (await get(guarded, "/admin/requests/recent")).json());
    const entry = recent.requests.find((r) => r.requestId === requestId);
    expect(entry).toMatchObject({ model: "alpha", node: "n1", dialect: "openai", stream: true, status: 200 });
    expect(entry?.promptTokens).toBeGreaterThan(0);
    expect(entry?.generatedTokens).toBeGreaterThan(0);
    expect(entry?.ttftMs).toBeGreaterThan(0);
    expect(entry?.durationMs).toBeGreaterThanOrEqual(entry?.ttftMs ?? 0);
    expect(recent.requests[0]?.requestId).toBe(requestId);

    const series = TimeSeriesResponse.parse(await (await get(guarded, "/admin/timeseries")).json());
    expect(series.windowMs).toBe(15 * 60_000);
    const alpha = series.models.find((m) => m.model === "alpha");
    const sum = (key: "requests" | "generatedTokens") =>
      (alpha?.points ?? []).reduce((total, point) => total + point[key], 0);
    expect(sum("requests")).toBeGreaterThanOrEqual(1);
    expect(sum("generatedTokens")).toBeGreaterThanOrEqual(entry?.generatedTokens ?? 1);
    expect(alpha?.points.some((p) => p.ttftP50Ms !== null)).toBe(true);
  });

  test("a refused request shows with its status and error code, and counts as an error", async () => {
    const requestId = `dash-missing-${crypto.randomUUID()}`;
    const answer = await messages(guarded.url, "no-such-model", {
      headers: { "x-api-key": KEY, "x-request-id": requestId },
    });
    expect(answer.status).toBe(404);
    const recent = RecentRequestsResponse.parse(
      await (await get(guarded, "/admin/requests/recent?limit=5")).json(),
    );
    expect(recent.requests.length).toBeLessThanOrEqual(5);
    expect(recent.requests.find((r) => r.requestId === requestId)).toMatchObject({
      dialect: "anthropic",
      status: 404,
      error: "model_not_found",
      node: "none",
    });
    const series = TimeSeriesResponse.parse(await (await get(guarded, "/admin/timeseries")).json());
    expect(series.total.reduce((n, p) => n + p.errors, 0)).toBeGreaterThanOrEqual(1);
  });

  test("a bad limit is a 400 naming it", async () => {
    for (const limit of ["0", "501", "ten"]) {
      const response = await get(guarded, `/admin/requests/recent?limit=${limit}`);
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: { message: string; param?: string } };
      expect(body.error.message).toContain("limit");
    }
  });
});

describe("who may read it", () => {
  test("with an admin token: no token or a wrong one is 401 on every dashboard endpoint", async () => {
    for (const path of ["/admin/overview", "/admin/timeseries", "/admin/requests/recent"]) {
      expect((await get(guarded, path, {})).status).toBe(401);
      expect((await get(guarded, path, { authorization: "Bearer wrong" })).status).toBe(401);
      // An API key is for /v1, not for the admin API.
      expect((await get(guarded, path, { authorization: `Bearer ${KEY}` })).status).toBe(401);
    }
  });

  test("without one: loopback only, and never for another site or a rebound name", async () => {
    expect((await get(open, "/admin/overview", {})).status).toBe(200);
    const port = new URL(open.url).port;
    const crossSite = await get(open, "/admin/overview", { origin: "http://evil.example" });
    expect(crossSite.status).toBe(403);
    for (const path of ["/admin/requests/recent", "/ui", "/ui/app.js"]) {
      const rebound = await get(open, path, { host: `evil.example:${port}` });
      expect(rebound.status).toBe(403);
      expect(await rebound.text()).toContain("loopback");
    }
  });
});

describe("the page", () => {
  test("is served from the gateway with its assets, a strict CSP and no framing", async () => {
    for (const gateway of [guarded, open]) {
      const page = await get(gateway, "/ui", {});
      expect(page.status).toBe(200);
      expect(page.headers.get("content-type")).toContain("text/html");
      const csp = page.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      const html = await page.text();
      expect(html).toContain('<script type="module" src="/ui/app.js">');
      expect(html).not.toMatch(/https?:\/\//);
    }
    const script = await get(guarded, "/ui/app.js", {});
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toContain("text/javascript");
    const js = await script.text();
    expect(js).toContain("/admin/overview");
    // Offline: the bundle names no other host to fetch from.
    expect(js).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const styles = await get(guarded, "/ui/app.css", {});
    expect(styles.headers.get("content-type")).toContain("text/css");
    expect(await styles.text()).toMatch(/prefers-color-scheme:\s*dark/);
    expect((await get(guarded, "/ui/nothing-here.js", {})).status).toBe(404);
  });
});
