/**
 * Model pulls on a real neuron (real libllama on the tiny model) from a
 * Hugging Face Hub on loopback (helpers/fake-hub.ts: its header lists the
 * documented hub behaviours it reproduces: the tree listing with `lfs.oid`
 * sha256s and `Link` pagination, `resolve` with a 302 to a CDN that answers
 * Range requests with 206/Content-Range, 401 `GatedRepo` without a token,
 * 404 `EntryNotFound`). What an operator sees: the pull's answer, its
 * progress in `/models/pulls`, the file in `/models` and loadable, and
 * clear failures that leave nothing half-written behind.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NeuronSection } from "../../src/core/config/config-schema.ts";
import type { PullStatus } from "../../src/core/pull-api.ts";
import { ModelsDir } from "../../src/neuron/models-dir.ts";
import { HubClient } from "../../src/neuron/pull/hub-client.ts";
import { PullManager } from "../../src/neuron/pull/pull-manager.ts";
import { type RunningNeuron, startNeuron } from "../../src/neuron/start-neuron.ts";
import { FAKE_HUB_TOKEN, type FakeHub, startFakeHub } from "./helpers/fake-hub.ts";
import { makePullModels, type PullModels } from "./helpers/pull-models.ts";

let hub: FakeHub;
let neuron: RunningNeuron;
let models: PullModels;
let dir: string;

function api(path: string, body?: unknown): Promise<Response> {
  return fetch(`${neuron.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** Starts a pull over HTTP; resolves with the neuron's answer and, when it was accepted, the pull's end. */
async function pull(
  source: string,
): Promise<{ status: number; body: Record<string, unknown>; end?: PullStatus }> {
  const response = await api("/models/pull", { source });
  const body = (await response.json()) as Record<string, unknown>;
  if (response.status !== 202) return { status: response.status, body };
  return { status: 202, body, end: await neuron.pulls.finished(String(body.id)) };
}

const cdnGets = (repo: string, path: string) =>
  hub.requests.filter((request) => request.path.startsWith("/cdn/") && request.object === `${repo}/${path}`);

async function available(): Promise<string[]> {
  const body = (await (await api("/models")).json()) as { available: Array<{ file: string }> };
  return body.available.map((model) => model.file);
}

async function chatWorks(file: string, id: string): Promise<void> {
  const load = await api("/models/load", { id, file, contextSize: 512, slots: 1 });
  expect(load.status).toBe(201);
  const chat = await api("/v1/chat/completions", {
    model: id,
    messages: [{ role: "user", content: "Tell me about the garden." }],
    max_tokens: 8,
    temperature: 0,
  });
  expect(chat.status).toBe(200);
  const answer = (await chat.json()) as { choices: Array<{ message: { content: string } }> };
  expect(answer.choices[0]?.message.content.length).toBeGreaterThan(0);
}

beforeAll(async () => {
  models = await makePullModels();
  hub = startFakeHub();
  hub.addRepo("acme/tiny-GGUF", {
    "README.md": new TextEncoder().encode("# tiny\n"),
    "tiny-Q4_K_M.gguf": models.tiny,
    "tiny-Q8_0.gguf": models.tinyOther,
    "tiny-Q4_K.gguf": models.tinyOther,
  });
  hub.addRepo("acme/two-GGUF", {
    "one-Q4_K_M.gguf": new Uint8Array(16),
    "two-Q4_K_M.gguf": new Uint8Array(16),
  });
  hub.addRepo("acme/split-GGUF", {
    "Q8_0/split-Q8_0-00001-of-00002.gguf": models.split[0],
    "Q8_0/split-Q8_0-00002-of-00002.gguf": models.split[1],
  });
  hub.addRepo("acme/vision-GGUF", {
    "vision-Q4_K_M.gguf": models.tinyOther,
    "mmproj-vision-f16.gguf": models.mmproj,
  });
  hub.addRepo("acme/gated-GGUF", { "gated-Q4_K_M.gguf": models.tiny }, { gated: true });
  hub.addRepo("acme/flaky-GGUF", { "flaky-Q4_K_M.gguf": models.tiny });
  hub.addRepo("acme/bad-GGUF", { "bad-Q4_K_M.gguf": models.tiny });
  hub.addRepo("acme/slow-GGUF", { "slow-Q4_K_M.gguf": models.tinyOther });
  hub.addRepo("acme/twice-GGUF", { "twice-Q4_K_M.gguf": models.tiny });
  // Listings arrive a few entries a page, as the hub paginates long ones.
  hub.pageSize = 2;
  dir = await mkdtemp(join(tmpdir(), "cortex-pull-"));
  neuron = await startNeuron({
    config: NeuronSection.parse({ models_dir: dir, hf_endpoint: hub.url, pull_keep_free: 0 }),
    listen: { hostname: "127.0.0.1", port: 0 },
    pullRetry: { retryDelayMs: 1 },
  });
});

afterAll(async () => {
  await neuron?.stop();
  hub?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("pulling a model onto a neuron", () => {
  test("by quant tag (any case): the file lands checked, /models lists it, it loads and answers", async () => {
    const { status, body, end } = await pull("hf:acme/tiny-GGUF:q4_k_m");
    expect(status).toBe(202);
    expect(body.model).toBe("acme/tiny-GGUF/tiny-Q4_K_M.gguf");
    expect(end?.state).toBe("done");
    expect(end?.bytesDone).toBe(models.tiny.byteLength);
    expect(new Uint8Array(await readFile(join(dir, "acme/tiny-GGUF/tiny-Q4_K_M.gguf")))).toEqual(models.tiny);
    // Only the chosen file: not its siblings, no temporary file left.
    expect(await readdir(join(dir, "acme/tiny-GGUF"))).toEqual(["tiny-Q4_K_M.gguf"]);
    expect(await available()).toContain("acme/tiny-GGUF/tiny-Q4_K_M.gguf");
    await chatWorks("acme/tiny-GGUF/tiny-Q4_K_M.gguf", "pulled-tiny");
    // The hub's token never travelled (none is set), and the listing was followed over its pages.
    expect(hub.requests.filter((r) => r.path.includes("/tree/")).length).toBeGreaterThan(1);
  });

  test("by exact file name; a tag matching several files or none is refused with the candidates", async () => {
    const byName = await pull("acme/tiny-GGUF/tiny-Q8_0.gguf");
    expect(byName.end?.state).toBe("done");
    expect(await available()).toContain("acme/tiny-GGUF/tiny-Q8_0.gguf");

    const none = await pull("acme/tiny-GGUF:IQ2_XS");
    expect(none.status).toBe(404);
    expect(JSON.stringify(none.body)).toContain("tiny-Q4_K_M.gguf, tiny-Q8_0.gguf");
    const several = await pull("acme/two-GGUF:q4_k_m");
    expect(several.status).toBe(400);
    expect(JSON.stringify(several.body)).toContain("matches several GGUFs");
    expect(JSON.stringify(several.body)).toContain("one-Q4_K_M.gguf, two-Q4_K_M.gguf");
    const unnamed = await pull("acme/tiny-GGUF");
    expect(unnamed.status).toBe(400);
    expect(JSON.stringify(unnamed.body)).toContain("several GGUF models");
    // Q4_K is a whole quant name here and matches only tiny-Q4_K.gguf, not tiny-Q4_K_M.gguf.
    const exact = await pull("acme/tiny-GGUF:Q4_K");
    expect(exact.end?.model).toBe("acme/tiny-GGUF/tiny-Q4_K.gguf");
  });

  test("a split model: every part is pulled, the first part is the model, and it loads", async () => {
    const { end } = await pull("hf:acme/split-GGUF:Q8_0");
    expect(end?.state).toBe("done");
    expect(end?.model).toBe("acme/split-GGUF/Q8_0/split-Q8_0-00001-of-00002.gguf");
    expect(end?.files.map((file) => file.file)).toEqual([
      "acme/split-GGUF/Q8_0/split-Q8_0-00001-of-00002.gguf",
      "acme/split-GGUF/Q8_0/split-Q8_0-00002-of-00002.gguf",
    ]);
    await chatWorks("acme/split-GGUF/Q8_0/split-Q8_0-00001-of-00002.gguf", "pulled-split");
  });

  test("a vision model brings its mmproj file", async () => {
    const { end } = await pull("acme/vision-GGUF:Q4_K_M");
    expect(end?.files.map((file) => file.file)).toEqual([
      "acme/vision-GGUF/vision-Q4_K_M.gguf",
      "acme/vision-GGUF/mmproj-vision-f16.gguf",
    ]);
    expect(await readdir(join(dir, "acme/vision-GGUF"))).toEqual(
      expect.arrayContaining(["vision-Q4_K_M.gguf", "mmproj-vision-f16.gguf"]),
    );
  });

  test("a connection dropped mid-file resumes with a Range request and ends verified", async () => {
    const half = Math.floor(models.tiny.byteLength / 2);
    hub.dropAfter("acme/flaky-GGUF", "flaky-Q4_K_M.gguf", half);
    const { end } = await pull("acme/flaky-GGUF:Q4_K_M");
    expect(end?.state).toBe("done");
    const gets = cdnGets("acme/flaky-GGUF", "flaky-Q4_K_M.gguf");
    // The second request asks for the rest, from what had arrived (at most what was sent).
    expect(gets.length).toBe(2);
    expect(gets[0]?.range).toBeNull();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]?.range ?? "")?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(half);
    expect(new Uint8Array(await readFile(join(dir, "acme/flaky-GGUF/flaky-Q4_K_M.gguf")))).toEqual(
      models.tiny,
    );
  });

  test("a partial file left by an earlier run resumes from where it stopped", async () => {
    hub.addRepo("acme/resume-GGUF", { "resume-Q4_K_M.gguf": models.tinyOther });
    const known = 100_000;
    await Bun.$`mkdir -p ${join(dir, "acme/resume-GGUF")}`.quiet();
    await writeFile(join(dir, "acme/resume-GGUF/.resume-Q4_K_M.gguf.part"), models.tinyOther.slice(0, known));
    await writeFile(
      join(dir, "acme/resume-GGUF/.resume-Q4_K_M.gguf.part.json"),
      JSON.stringify({
        size: models.tinyOther.byteLength,
        digest: hub.sha256("acme/resume-GGUF", "resume-Q4_K_M.gguf"),
      }),
    );
    const { end } = await pull("acme/resume-GGUF:Q4_K_M");
    expect(end?.state).toBe("done");
    expect(cdnGets("acme/resume-GGUF", "resume-Q4_K_M.gguf").map((get) => get.range)).toEqual([
      `bytes=${known}-`,
    ]);
    expect(new Uint8Array(await readFile(join(dir, "acme/resume-GGUF/resume-Q4_K_M.gguf")))).toEqual(
      models.tinyOther,
    );
  });

  test("content that does not match the listed sha256 fails clearly and leaves no file behind", async () => {
    hub.corrupt("acme/bad-GGUF", "bad-Q4_K_M.gguf");
    const { status, end } = await pull("acme/bad-GGUF:Q4_K_M");
    expect(status).toBe(202);
    expect(end?.state).toBe("failed");
    expect(end?.error).toContain("checksum mismatch");
    expect(end?.error).toContain(hub.sha256("acme/bad-GGUF", "bad-Q4_K_M.gguf"));
    expect(await readdir(join(dir, "acme/bad-GGUF"))).toEqual([]);
    expect(await available()).not.toContain("acme/bad-GGUF/bad-Q4_K_M.gguf");
  });

  test("a gated repository: refused without HF_TOKEN with a message that says so, pulled with one", async () => {
    const refused = await pull("acme/gated-GGUF:Q4_K_M");
    expect(refused.status).toBe(502);
    expect(JSON.stringify(refused.body)).toContain("GatedRepo");
    expect(JSON.stringify(refused.body)).toContain("set HF_TOKEN");
    const withToken = new PullManager({
      hub: new HubClient({ endpoint: hub.url, token: FAKE_HUB_TOKEN }),
      modelsDir: new ModelsDir(dir),
      keepFreeBytes: 0,
    });
    const started = await withToken.start("acme/gated-GGUF:Q4_K_M");
    expect((await withToken.finished(started.id)).state).toBe("done");
    expect(await available()).toContain("acme/gated-GGUF/gated-Q4_K_M.gguf");
    // The token went to the hub's API and resolve URLs, never to the CDN it redirected to.
    const cdn = hub.requests.filter((r) => r.path.startsWith("/cdn/") && r.authorization !== null);
    expect(cdn).toEqual([]);
    expect(hub.requests.some((r) => r.authorization === `Bearer ${FAKE_HUB_TOKEN}`)).toBe(true);
  });

  test("a repository or file the hub does not have is a 404 that names it", async () => {
    const repo = await pull("acme/missing-GGUF:Q4_K_M");
    expect(repo.status).toBe(404);
    expect(JSON.stringify(repo.body)).toContain("acme/missing-GGUF");
    const file = await pull("acme/tiny-GGUF/nope.gguf");
    expect(file.status).toBe(404);
    expect(JSON.stringify(file.body)).toContain("nope.gguf");
  });

  test("a slow download reports its progress: bytes, rate and ETA while it runs", async () => {
    hub.chunkBytes = 256 * 1024;
    const gate = hub.hold("acme/slow-GGUF", "slow-Q4_K_M.gguf");
    const seen: PullStatus[] = [];
    let started: PullStatus | undefined;
    const progressed = new Promise<void>((resolve) => {
      const off = neuron.pulls.onChange((status) => {
        if (status.source !== "acme/slow-GGUF:Q4_K_M") return;
        seen.push(status);
        // The third chunk is in: let the rest through at once.
        if (status.state === "downloading" && status.bytesDone >= 3 * hub.chunkBytes) {
          off();
          resolve();
        } else if (status.state === "downloading" && status.bytesDone > 0) gate.release();
      });
    });
    gate.release();
    started = (await (await api("/models/pull", { source: "acme/slow-GGUF:Q4_K_M" })).json()) as PullStatus;
    await progressed;
    // While it is held, the API shows it in flight with its numbers.
    const inFlight = (await (await api("/models/pulls")).json()) as { pulls: PullStatus[] };
    const mine = inFlight.pulls.find((p) => p.id === started?.id);
    expect(mine?.state).toBe("downloading");
    expect(mine?.current).toBe("acme/slow-GGUF/slow-Q4_K_M.gguf");
    expect(mine?.bytesDone).toBeGreaterThanOrEqual(3 * hub.chunkBytes);
    expect(mine?.bytesTotal).toBe(models.tinyOther.byteLength);
    expect(mine?.rate).toBeGreaterThan(0);
    expect(mine?.etaS).toBeGreaterThanOrEqual(0);
    const done = seen.map((status) => status.bytesDone);
    expect(done).toEqual([...done].sort((a, b) => a - b));
    for (let i = 0; i < 20; i++) gate.release();
    const end = await neuron.pulls.finished(started.id);
    expect(end.state).toBe("done");
    hub.chunkBytes = 64 * 1024;
  });

  test("two pulls of one file at once download it once", async () => {
    const [byTag, byName] = await Promise.all([
      pull("acme/twice-GGUF:Q4_K_M"),
      pull("acme/twice-GGUF/twice-Q4_K_M.gguf"),
    ]);
    expect(byTag.end?.state).toBe("done");
    expect(byName.end?.state).toBe("done");
    expect(cdnGets("acme/twice-GGUF", "twice-Q4_K_M.gguf").length).toBe(1);
    // Pulled again now that it is there: nothing is downloaded.
    const again = await pull("acme/twice-GGUF:Q4_K_M");
    expect(again.end?.files[0]?.present).toBe(true);
    expect(cdnGets("acme/twice-GGUF", "twice-Q4_K_M.gguf").length).toBe(1);
  });

  test("a disk too small is refused before any byte is fetched, with the sizes", async () => {
    hub.addRepo("acme/big-GGUF", { "big-Q4_K_M.gguf": models.tiny });
    const tight = new PullManager({
      hub: new HubClient({ endpoint: hub.url, token: "" }),
      modelsDir: new ModelsDir(dir),
      keepFreeBytes: 2 ** 60,
    });
    const error = await tight.start("acme/big-GGUF:Q4_K_M").then(
      () => undefined,
      (e: unknown) => e as Error & { status: number },
    );
    expect(error?.status).toBe(507);
    expect(error?.message).toMatch(
      /needs 2\.\d MiB, [\d.]+ [GT]iB is free and neuron\.pull_keep_free keeps 1048576\.0 TiB/,
    );
    expect(cdnGets("acme/big-GGUF", "big-Q4_K_M.gguf")).toEqual([]);
  });

  test("models rm deletes a file not loaded, refuses one loaded (409), and /models follows", async () => {
    const loaded = await api("/models/remove", { file: "acme/tiny-GGUF/tiny-Q4_K_M.gguf" });
    expect(loaded.status).toBe(409);
    expect(JSON.stringify(await loaded.json())).toContain("pulled-tiny");
    const removed = await api("/models/remove", { file: "acme/tiny-GGUF/tiny-Q8_0.gguf" });
    expect(removed.status).toBe(200);
    expect(await removed.json()).toEqual({ removed: ["acme/tiny-GGUF/tiny-Q8_0.gguf"] });
    expect(await available()).not.toContain("acme/tiny-GGUF/tiny-Q8_0.gguf");
    expect((await api("/models/remove", { file: "acme/tiny-GGUF/tiny-Q8_0.gguf" })).status).toBe(404);
    // A split model goes whole, by its first part, once unloaded.
    expect((await api("/models/unload", { id: "pulled-split" })).status).toBe(200);
    const split = await api("/models/remove", {
      file: "acme/split-GGUF/Q8_0/split-Q8_0-00001-of-00002.gguf",
    });
    expect(((await split.json()) as { removed: string[] }).removed.length).toBe(2);
    expect((await available()).some((file) => file.startsWith("acme/split-GGUF/"))).toBe(false);
  });

  test("metrics count the bytes downloaded, the pulls by outcome and their durations", async () => {
    const text = await (await api("/metrics")).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? "NaN");
    expect(value("cortex_neuron_pull_bytes_total")).toBeGreaterThan(models.tiny.byteLength * 3);
    expect(value('cortex_neuron_pulls_total\\{outcome="downloaded"\\}')).toBeGreaterThanOrEqual(6);
    expect(value('cortex_neuron_pulls_total\\{outcome="failed"\\}')).toBeGreaterThanOrEqual(3);
    expect(value('cortex_neuron_pulls_total\\{outcome="present"\\}')).toBeGreaterThanOrEqual(1);
    expect(
      value('cortex_neuron_pull_duration_seconds_count\\{outcome="downloaded"\\}'),
    ).toBeGreaterThanOrEqual(6);
  });
});
