/**
 * Issue 20: the dashboard in a real headless Chromium (Debian's package,
 * driven by playwright-core) against a real `cortex serve` (the gateway
 * with a neuron in its process, serving the demo model) that has an admin
 * token: a wrong token is refused, the page shows the node and the demo
 * model, unload and load work from the page, the playground streams an
 * answer in both dialects and shows a forced tool call as a tool call, and
 * each request shows up in the tail. Screenshots go to tests/.tmp/dashboard/.
 *
 * Skips, saying why, where no Chromium can be had (scripts/fetch-chromium.ts,
 * which `npm test` runs first, installs it).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { findChromium } from "../../scripts/fetch-chromium.ts";
import { startLocalNeuron } from "../../src/cli/local-neuron.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { configureLogging } from "../../src/core/logger.ts";
import { type RunningGateway, startGateway } from "../../src/gateway/run-gateway.ts";
import { ensureDemoModel } from "../../src/neuron/gguf/tiny-model.ts";
import { type FakeHub, startFakeHub } from "./helpers/fake-hub.ts";

const ADMIN = "dashboard-admin-token";
const MODEL = "cortex-tiny";
const ARTIFACTS = join(import.meta.dir, "..", ".tmp", "dashboard");
/** Set UPDATE_README_SCREENSHOT=1 to refresh the picture the README shows. */
const README_SHOT = join(import.meta.dir, "..", "..", "docs", "dashboard.png");

const executablePath = findChromium();
let browser: Browser | undefined;
let skipReason = "";
if (executablePath === undefined)
  skipReason = "no chromium here (bun scripts/fetch-chromium.ts installs Debian's package)";
else
  try {
    browser = await chromium.launch({
      executablePath,
      // As root Chromium needs --no-sandbox; the rest keep it off the (closed) network.
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  } catch (error) {
    skipReason = `chromium at ${executablePath} did not start: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`;
  }
if (skipReason !== "") console.warn(`dashboard browser test skipped: ${skipReason}`);

let dir = "";
let hub: FakeHub | undefined;
let heldPull: { release(): void } | undefined;
let gateway: RunningGateway;
let page: Page;

beforeAll(async () => {
  if (browser === undefined) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), "cortex-dashboard-"));
  // The neuron serves the demo model from XDG_CACHE_HOME/cortex/models, and the pull below lands
  // there: a folder of this run's own, so no earlier run's pull is "already present".
  process.env.XDG_CACHE_HOME = join(dir, "xdg");
  // A hub for the pull the page shows; its download is held until the test lets it go.
  hub = startFakeHub();
  hub.addRepo("acme/shown-GGUF", {
    "shown-Q4_K_M.gguf": new Uint8Array(
      await Bun.file(await ensureDemoModel(join(dir, "hub"))).arrayBuffer(),
    ),
  });
  // One chunk: the download waits before its first byte until released once.
  hub.chunkBytes = 8 * 1024 * 1024;
  heldPull = hub.hold("acme/shown-GGUF", "shown-Q4_K_M.gguf");
  const path = join(dir, "cortex.toml");
  writeFileSync(
    path,
    [
      "[gateway]",
      'listen = "127.0.0.1:0"',
      'metrics_listen = "127.0.0.1:0"',
      `admin_token = "${ADMIN}"`,
      "poll_interval_ms = 200",
      "[neuron]",
      "threads = 1",
      `hf_endpoint = "${hub.url}"`,
      "pull_keep_free = 0",
      "",
    ].join("\n"),
  );
  const config = loadConfig({ path, env: {} });
  configureLogging({ level: "warn", format: "text" });
  gateway = await startGateway(config, { startLocalNeuron });
  await gateway.whenFleet((nodes) =>
    nodes.some(
      (node) => node.state === "up" && node.loaded.some((m) => m.id === MODEL && m.state === "ready"),
    ),
  );
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
}, 60_000);

afterAll(async () => {
  heldPull?.release();
  await browser?.close();
  await gateway?.stop();
  hub?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });

describe.skipIf(browser === undefined)("the dashboard in Chromium", () => {
  test("a wrong admin token is refused, and the data stays behind it", async () => {
    await page.goto(`${gateway.url}/ui`);
    await page.getByLabel("Admin token").fill("not-the-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#login-error", { hasText: "refused" }).waitFor();
    expect(await page.locator("#fleet").count()).toBe(0);
    await shot("login-refused.png");
    const direct = await fetch(`${gateway.url}/admin/overview`, {
      headers: { authorization: "Bearer nope" },
    });
    expect(direct.status).toBe(401);
  });

  test("the right token (typed from the keyboard) shows the node, its device memory and the demo model", async () => {
    // The refusal put up a fresh form with focus in the (empty) token field; Enter submits it.
    expect(await page.evaluate("document.activeElement?.id")).toBe("login-token");
    await page.keyboard.type(ADMIN);
    await page.keyboard.press("Enter");
    const node = page.locator('article[data-node="local"]');
    await node.waitFor();
    expect(await node.locator(".state").first().textContent()).toBe("up");
    const row = node.locator(`tr[data-model="${MODEL}"]`);
    await row.waitFor();
    expect(await row.locator(".state").textContent()).toBe("ready");
    const meter = node.getByRole("meter").first();
    expect(await meter.getAttribute("aria-valuetext")).toMatch(/used$/);
    expect(Number(await meter.getAttribute("aria-valuemax"))).toBeGreaterThan(0);
    expect(await page.locator(`#catalogue tr[data-model="${MODEL}"]`).count()).toBe(1);
  });

  test("unload, then load on the chosen node, from the page", async () => {
    await page.getByRole("button", { name: `Unload ${MODEL} from local` }).click();
    await page.locator("#action-result.ok", { hasText: `${MODEL} unloaded from local` }).waitFor();
    await gateway.whenFleet((nodes) => nodes.every((n) => !n.loaded.some((m) => m.id === MODEL)));
    await page.locator('article[data-node="local"]', { hasText: "No model loaded." }).waitFor();

    await page.getByLabel(`Node to load ${MODEL} on`).selectOption("local");
    await page.getByRole("button", { name: `Load ${MODEL}` }).click();
    await page.locator("#action-result.ok", { hasText: `${MODEL} is loaded on local` }).waitFor();
    await page.locator(`article[data-node="local"] tr[data-model="${MODEL}"]`).waitFor();
    const nodes = await gateway.whenFleet((all) => all.some((n) => n.loaded.some((m) => m.id === MODEL)));
    expect(nodes.find((n) => n.name === "local")?.loaded.map((m) => m.id)).toContain(MODEL);
  });

  test("a model pull shows on its node with its progress, then as done", async () => {
    const started = await fetch(`${gateway.url}/admin/models/pull`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({ source: "acme/shown-GGUF:Q4_K_M" }),
    });
    expect(started.ok).toBe(true);
    const item = page.locator('article[data-node="local"] li[data-pull*="acme/shown-GGUF"]');
    await page.locator('article[data-node="local"] li[data-pull][data-state="downloading"]').waitFor();
    expect(await item.getByRole("progressbar").count()).toBe(1);
    expect(await item.textContent()).toMatch(/of \d/);
    await shot("pull-in-progress.png");
    heldPull?.release();
    await page.locator('article[data-node="local"] li[data-pull][data-state="done"]').waitFor();
  });

  test("pin and unpin, from the page", async () => {
    await page.getByRole("button", { name: `Pin ${MODEL}` }).click();
    await page.locator("#action-result.ok", { hasText: `${MODEL} pinned on local` }).waitFor();
    await page
      .locator(`article[data-node="local"] tr[data-model="${MODEL}"]`, { hasText: "pinned" })
      .waitFor();
    await page.getByRole("button", { name: `Unpin ${MODEL}` }).click();
    await page.locator("#action-result.ok", { hasText: `${MODEL} unpinned on local` }).waitFor();
    const nodes = await gateway.whenFleet((all) => all.some((n) => n.loaded.some((m) => m.id === MODEL)));
    expect(nodes[0]?.loaded.find((m) => m.id === MODEL)?.pinned).toBe(false);
  });

  for (const dialect of ["openai", "anthropic"] as const)
    test(`the playground streams an answer (${dialect}) and the request shows in the tail`, async () => {
      await page.getByLabel("Model", { exact: true }).selectOption(MODEL);
      // This gateway has no API keys: the playground does not ask for one.
      expect(await page.getByLabel("API key").isVisible()).toBe(false);
      await page.locator(`input[name="pg-dialect"][value="${dialect}"]`).check();
      await page.getByLabel("Max tokens").fill("12");
      await page.getByLabel("Message", { exact: true }).fill("Hello there");
      await page.getByRole("button", { name: "Send" }).click();
      const stats = page.locator("#pg-stats", { hasText: "done" });
      await stats.waitFor();
      const text = (await stats.textContent()) ?? "";
      expect(text).toContain("TTFT");
      expect(text).toMatch(/\d+ generated/);
      const answer = page.locator(".turn-assistant .text").last();
      expect(((await answer.textContent()) ?? "").length).toBeGreaterThan(0);
      const raw = (await page.locator("#pg-raw-response").textContent()) ?? "";
      expect(raw).toContain(dialect === "openai" ? "chat.completion.chunk" : "event: message_start");
      const requestId =
        (await page.locator("#pg-stats [data-request-id]").getAttribute("data-request-id")) ?? "";
      expect(requestId).toStartWith("ui-");
      const row = page.locator(`#tail tr[data-request-id="${requestId}"]`);
      await row.waitFor();
      expect(await row.textContent()).toContain(dialect);
      expect(await row.textContent()).toContain("200");
    });

  test("a forced tool call is shown as a tool call", async () => {
    await page.getByText("Tools", { exact: true }).click();
    await page.getByLabel(/^Tools: a JSON array/).fill(
      JSON.stringify([
        {
          name: "get_weather",
          parameters: {
            type: "object",
            properties: { city: { type: "string", maxLength: 12 } },
            required: ["city"],
          },
        },
      ]),
    );
    await page.getByLabel("Require a tool call").check();
    await page.locator('input[name="pg-dialect"][value="openai"]').check();
    // Room for the whole call: a cut-off one is no tool call, only text.
    await page.getByLabel("Max tokens").fill("96");
    await page.getByRole("button", { name: "Clear" }).click();
    await page.getByLabel("Message", { exact: true }).fill("Weather in Paris?");
    await page.getByRole("button", { name: "Send" }).click();
    await page.locator("#pg-stats", { hasText: "done" }).waitFor();
    const call = page.locator(".turn-assistant .tool-call").last();
    await call.waitFor();
    expect(await call.textContent()).toContain("get_weather(");
    expect(await call.textContent()).toContain('"city"');
  });

  test("the charts count the requests; screenshots in light and dark", async () => {
    // The tail and the charts come from the same poll: once the last request is in the tail, the series has it.
    await page.locator("#charts figure").first().waitFor();
    const label = (await page.locator("#charts svg").first().getAttribute("aria-label")) ?? "";
    expect(label).toStartWith("Requests:");
    const series = (await (
      await fetch(`${gateway.url}/admin/timeseries`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as { total: Array<{ requests: number }> };
    expect(series.total.reduce((sum, p) => sum + p.requests, 0)).toBeGreaterThanOrEqual(3);
    await shot("dashboard-light.png");
    if (process.env.UPDATE_README_SCREENSHOT === "1")
      await page.screenshot({ path: README_SHOT, fullPage: true });
    await page.emulateMedia({ colorScheme: "dark" });
    await shot("dashboard-dark.png");
  });

  test("client-given strings (request ids, model names) are shown as text, never run", async () => {
    const hostileId = `<img src=x onerror="window.__xss=1">`;
    const ok = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": hostileId },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 4 }),
    });
    expect(ok.status).toBe(200);
    await ok.text();
    const hostileModel = "<b>bold</b>";
    const refused = await fetch(`${gateway.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: JSON.stringify({
        model: hostileModel,
        max_tokens: 4,
        messages: [{ role: "user", content: "Hi" }],
      }),
    });
    expect(refused.status).toBe(404);
    await refused.text();
    await page.locator("#tail td", { hasText: hostileId }).waitFor();
    await page.locator("#tail tr.failed", { hasText: hostileModel }).waitFor();
    expect(await page.locator("#tail img, #tail b").count()).toBe(0);
    expect(await page.evaluate("window.__xss")).toBeUndefined();
  });
});
