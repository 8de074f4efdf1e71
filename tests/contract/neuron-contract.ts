/**
 * The neuron contract: what the gateway relies on a neuron to do, observed
 * the way the gateway observes it (through a NeuronApi, every assertion on
 * both `/models` and `/health`). The real neuron and every fake the tests
 * use run this one suite, so a fake cannot hide the bugs it stands in for
 * (a recycle that left "ready" models answering 404 went unseen while the
 * in-memory fake kept models across a recycle).
 *
 * A fake that does not serve a part says so in its capabilities: the chat
 * and fault tests then show as skipped, and a fake with a fixed set of models
 * must refuse the lifecycle calls with 404 rather than pretend to do them.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import type { DeviceInfo, HealthResponse, LoadedModel, ModelsResponse } from "../../src/core/neuron-api.ts";
import type { NeuronApi } from "../../src/gateway/neuron-client.ts";

/** The parts of the contract a neuron serves; every part it claims must pass. */
export interface NeuronCapabilities {
  /** load, unload, pin and recycle (otherwise: a fixed set of models, and those calls are 404). */
  lifecycle: boolean;
  /** chat completions at `api.target("/v1/chat/completions")`; the harness has `chat`. */
  chat: boolean;
  /** device faults on cue; the harness has `poison`. */
  faults: boolean;
}

/** What a chat completion answered: its status and, for an error, its code. */
export interface ChatOutcome {
  status: number;
  code?: string | undefined;
}

export interface NeuronHarness {
  api: NeuronApi;
  /** A file in the neuron's models directory that loads (a fixed-set fake: the file of `preloaded`). */
  file: string;
  /** Another file it has, for loading an id already loaded from `file`. */
  otherFile: string;
  /** The device the contract loads onto, recycles and poisons. */
  device: string;
  /** A model a fixed-set fake serves from the start, on `device`. */
  preloaded?: string;
  /** A tiny chat completion to `modelId`; present when the neuron serves chats. */
  chat?: (modelId: string) => Promise<ChatOutcome>;
  /**
   * A native fault on the device; present where the harness can cause one.
   * Resolves once the neuron has seen the fault (a model on the device must
   * be loaded for the real neuron's decode to fail).
   */
  poison?: (deviceId: string) => Promise<void>;
  /** With `poison`: resolves once the neuron has recycled the poisoned device (an event, not a poll). */
  recovered?: () => Promise<void>;
  close(): Promise<void>;
}

/** A tiny non-streamed chat completion through `api.target`, as the gateway proxies one. */
export async function chatThrough(api: NeuronApi, modelId: string): Promise<ChatOutcome> {
  const { url, headers } = api.target("/v1/chat/completions");
  const response = await fetch(url, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({
      model: modelId,
      messages: [{ role: "user", content: "Tell me about the garden." }],
      max_tokens: 2,
      temperature: 0,
    }),
  });
  const text = await response.text();
  if (response.ok) return { status: response.status };
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: response.status, code };
}

/** Both views of the neuron the gateway polls, read one after the other. */
interface Views {
  models: ModelsResponse;
  health: HealthResponse;
}

async function views(api: NeuronApi): Promise<Views> {
  const models = await api.models();
  const health = await api.health();
  return { models, health };
}

/** What both views must agree on for one model; undefined when it is not listed. */
function listing(loaded: LoadedModel[], id: string) {
  const model = loaded.find((m) => m.id === id);
  return (
    model && {
      id: model.id,
      file: model.file,
      state: model.state,
      devices: model.devices,
      pinned: model.pinned,
    }
  );
}

/** The model as `/models` and `/health` list it, side by side, for one readable diff. */
function listed(v: Views, id: string) {
  return { "/models": listing(v.models.loaded, id), "/health": listing(v.health.loaded, id) };
}

/** Listed `ready` in both views, from `file` on `devices`, pinned or not. */
function expectListed(
  v: Views,
  expected: { id: string; file: string; devices: string[]; pinned?: boolean },
): void {
  const entry = { ...expected, state: "ready" as const, pinned: expected.pinned ?? false };
  expect(listed(v, expected.id)).toEqual({ "/models": entry, "/health": entry });
}

function expectAbsent(v: Views, id: string): void {
  expect(listed(v, id)).toEqual({ "/models": undefined, "/health": undefined });
}

function deviceOf(v: Views, id: string): DeviceInfo | undefined {
  return v.health.devices.find((d) => d.id === id);
}

/** The CortexError a call failed with (the NeuronClient turns every non-2xx into one). */
async function refusal(call: Promise<unknown>): Promise<{ status: number; code: string }> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof CortexError)) throw new Error(`expected a refusal, got ${String(error)}`);
  return { status: error.status, code: error.code };
}

/** Declares the contract's tests for one neuron; `make` starts it (once for the whole suite). */
export function neuronContract(
  name: string,
  serves: NeuronCapabilities,
  make: () => Promise<NeuronHarness>,
): void {
  describe(`neuron contract: ${name}`, () => {
    let h: NeuronHarness;
    const chat = (id: string) => h.chat!(id);

    beforeAll(async () => {
      h = await make();
      // The flags and the harness must say the same thing, or parts would go untested unnoticed.
      expect({
        chat: h.chat !== undefined,
        faults: h.poison !== undefined && h.recovered !== undefined,
      }).toEqual({
        chat: serves.chat,
        faults: serves.faults,
      });
      if (!serves.lifecycle) expect(h.preloaded).toBeDefined();
    }, 60_000);

    afterAll(async () => {
      await h?.close();
    });

    if (serves.lifecycle)
      // Every test starts from an empty neuron, so each one reads on its own.
      beforeEach(async () => {
        // Cleanup, not an assertion: a model a broken recycle left listed may already be gone underneath.
        for (const model of (await h.api.models()).loaded)
          await h.api.unload({ id: model.id, force: true }).catch(() => undefined);
      });

    /** The id a lifecycle-serving neuron has loaded from `file` for the test, or the fake's own. */
    async function servedModel(): Promise<string> {
      if (h.preloaded !== undefined) return h.preloaded;
      await h.api.load({ id: "contract-chat", file: h.file, devices: [h.device] });
      return "contract-chat";
    }

    test("/models and /health list the same models, each on devices /health reports", async () => {
      const v = await views(h.api);
      const ids = (loaded: LoadedModel[]) => loaded.map((m) => m.id).sort();
      expect(ids(v.health.loaded)).toEqual(ids(v.models.loaded));
      for (const model of v.models.loaded)
        expect(listed(v, model.id)["/health"]).toEqual(listing(v.models.loaded, model.id));
      const known = new Set(v.health.devices.map((d) => d.id));
      expect(v.models.loaded.flatMap((m) => m.devices).filter((id) => !known.has(id))).toEqual([]);
      expect(known.has(h.device)).toBe(true);
    });

    if (!serves.lifecycle)
      test("a fixed set of models: they are listed ready, and load, unload, pin and recycle are refused with 404", async () => {
        const preloaded = h.preloaded!;
        const v = await views(h.api);
        expectListed(v, {
          id: preloaded,
          file: h.file,
          devices: [h.device],
          pinned: listing(v.models.loaded, preloaded)?.pinned ?? false,
        });
        const refusals = await Promise.all([
          refusal(h.api.load({ id: preloaded, file: h.file })),
          refusal(h.api.unload({ id: preloaded })),
          refusal(h.api.pin({ id: preloaded, pinned: true })),
          refusal(h.api.recycle({ device: h.device })),
        ]);
        expect(refusals.map((r) => r.status)).toEqual([404, 404, 404, 404]);
        expectListed(await views(h.api), {
          id: preloaded,
          file: h.file,
          devices: [h.device],
          pinned: listing(v.models.loaded, preloaded)?.pinned ?? false,
        });
      });

    describe.if(serves.chat)("chat", () => {
      test("a chat to a loaded model answers 200", async () => {
        expect(await chat(await servedModel())).toEqual({ status: 200 });
      });

      test("a chat to a model the neuron has not loaded answers 404 model_not_found", async () => {
        expect(await chat("contract-never-loaded")).toEqual({ status: 404, code: "model_not_found" });
      });
    });

    // A neuron without loads has the refusal test above instead.
    if (serves.lifecycle)
      describe("lifecycle", () => {
        test("a loaded model is listed ready on its device in /models and /health, and takes memory from it", async () => {
          const before = deviceOf(await views(h.api), h.device)!.memoryFree;
          const answer = await h.api.load({ id: "contract-a", file: h.file, devices: [h.device] });
          expect(answer.alreadyLoaded).toBe(false);
          expect(listing([answer.model], "contract-a")).toEqual({
            id: "contract-a",
            file: h.file,
            state: "ready",
            devices: [h.device],
            pinned: false,
          });
          const v = await views(h.api);
          expectListed(v, { id: "contract-a", file: h.file, devices: [h.device] });
          expect(deviceOf(v, h.device)!.memoryFree).toBeLessThan(before);
        });

        test("loading it again answers alreadyLoaded; another file under its id is 409 conflict; an unknown file is 404", async () => {
          await h.api.load({ id: "contract-a", file: h.file, devices: [h.device] });
          const again = await h.api.load({ id: "contract-a", file: h.file, devices: [h.device] });
          expect(again.alreadyLoaded).toBe(true);
          expect(
            await refusal(h.api.load({ id: "contract-a", file: h.otherFile, devices: [h.device] })),
          ).toEqual({
            status: 409,
            code: "conflict",
          });
          expect(
            (await refusal(h.api.load({ id: "contract-b", file: "contract-no-such-file.gguf" }))).status,
          ).toBe(404);
          const v = await views(h.api);
          expectListed(v, { id: "contract-a", file: h.file, devices: [h.device] });
          expectAbsent(v, "contract-b");
        });

        test("pin and unpin flip pinned in /models and /health; pinning a model that is not loaded is 404", async () => {
          await h.api.load({ id: "contract-a", file: h.file, devices: [h.device] });
          await h.api.pin({ id: "contract-a", pinned: true });
          expectListed(await views(h.api), {
            id: "contract-a",
            file: h.file,
            devices: [h.device],
            pinned: true,
          });
          await h.api.pin({ id: "contract-a", pinned: false });
          expectListed(await views(h.api), {
            id: "contract-a",
            file: h.file,
            devices: [h.device],
            pinned: false,
          });
          expect(await refusal(h.api.pin({ id: "contract-never-loaded", pinned: true }))).toEqual({
            status: 404,
            code: "model_not_found",
          });
        });

        test("an eviction of a copy loaded just now that has served nothing is refused (409); an operator's unload is not", async () => {
          await h.api.load({ id: "contract-fresh", file: h.file, devices: [h.device] });
          expect(await refusal(h.api.unload({ id: "contract-fresh", evict: true }))).toEqual({
            status: 409,
            code: "conflict",
          });
          expect((await views(h.api)).models.loaded.some((m) => m.id === "contract-fresh")).toBe(true);
          await h.api.unload({ id: "contract-fresh" });
          expectAbsent(await views(h.api), "contract-fresh");
        });

        test(`unload removes the model from /models and /health and gives its memory back; it loads again${serves.chat ? " and serves" : ""}`, async () => {
          const before = deviceOf(await views(h.api), h.device)!.memoryFree;
          await h.api.load({ id: "contract-a", file: h.file, devices: [h.device] });
          await h.api.unload({ id: "contract-a" });
          const v = await views(h.api);
          expectAbsent(v, "contract-a");
          expect(deviceOf(v, h.device)!.memoryFree).toBe(before);
          if (serves.chat) expect(await chat("contract-a")).toEqual({ status: 404, code: "model_not_found" });

          const again = await h.api.load({ id: "contract-a", file: h.file, devices: [h.device] });
          expect(again.alreadyLoaded).toBe(false);
          expectListed(await views(h.api), { id: "contract-a", file: h.file, devices: [h.device] });
          if (serves.chat) expect(await chat("contract-a")).toEqual({ status: 200 });
        });

        test("unloading a model that is not loaded is 404 model_not_found", async () => {
          expect(await refusal(h.api.unload({ id: "contract-never-loaded" }))).toEqual({
            status: 404,
            code: "model_not_found",
          });
        });

        test("recycling a device the neuron does not have is 404", async () => {
          expect((await refusal(h.api.recycle({ device: "contract-no-such-device" }))).status).toBe(404);
        });

        test(`a recycle keeps the pinned model ready${serves.chat ? " and serving" : ""}, drops the unpinned one from /models and /health${serves.chat ? " (chats to it 404 model_not_found)" : ""}, resets loadCycles, and the dropped one loads again${serves.chat ? " and serves" : ""}`, async () => {
          const empty = deviceOf(await views(h.api), h.device)!.memoryFree;
          await h.api.load({ id: "contract-pinned", file: h.file, devices: [h.device], pinned: true });
          const withPinned = deviceOf(await views(h.api), h.device)!.memoryFree;
          await h.api.load({ id: "contract-unpinned", file: h.otherFile, devices: [h.device] });
          // A load/unload cycle first, so the reset of loadCycles shows.
          await h.api.load({ id: "contract-cycled", file: h.file, devices: [h.device] });
          await h.api.unload({ id: "contract-cycled" });
          expect(deviceOf(await views(h.api), h.device)!.loadCycles).toBeGreaterThan(0);
          expect(withPinned).toBeLessThan(empty);

          await h.api.recycle({ device: h.device });

          const v = await views(h.api);
          expectListed(v, { id: "contract-pinned", file: h.file, devices: [h.device], pinned: true });
          expectAbsent(v, "contract-unpinned");
          expect(deviceOf(v, h.device)).toMatchObject({
            poisoned: false,
            loadCycles: 0,
            memoryFree: withPinned,
          });
          if (serves.chat) {
            expect(await chat("contract-pinned")).toEqual({ status: 200 });
            expect(await chat("contract-unpinned")).toEqual({ status: 404, code: "model_not_found" });
          }

          const again = await h.api.load({ id: "contract-unpinned", file: h.otherFile, devices: [h.device] });
          expect(again.alreadyLoaded).toBe(false);
          expectListed(await views(h.api), {
            id: "contract-unpinned",
            file: h.otherFile,
            devices: [h.device],
          });
          if (serves.chat) expect(await chat("contract-unpinned")).toEqual({ status: 200 });
        });
      });

    describe.if(serves.faults)("device faults", () => {
      test(`a device fault shows as degraded with the device poisoned; the neuron recycles the device by itself, its model is reported lost, and it loads again${serves.chat ? " and serves" : ""}`, async () => {
        await h.api.load({ id: "contract-a", file: h.file, devices: [h.device] });
        await h.poison!(h.device);

        // The neuron starts recycling the device at once, so a read may already find it healed; while it
        // is poisoned, /health must say degraded (the two are never read apart).
        const hurt = await views(h.api);
        const poisoned = deviceOf(hurt, h.device)?.poisoned === true;
        expect(hurt.health.status).toBe(poisoned ? "degraded" : "ok");
        // /models was read before /health: once /health shows the device healed, both must have dropped it.
        if (!poisoned) expectAbsent(await views(h.api), "contract-a");

        await h.recovered!();
        const healed = await views(h.api);
        expect(deviceOf(healed, h.device)?.poisoned).toBe(false);
        expectAbsent(healed, "contract-a");
        expect(healed.health.status).toBe("ok");
        if (serves.chat) expect(await chat("contract-a")).toEqual({ status: 404, code: "model_not_found" });

        const again = await h.api.load({ id: "contract-a", file: h.file, devices: [h.device] });
        expect(again.alreadyLoaded).toBe(false);
        expectListed(await views(h.api), { id: "contract-a", file: h.file, devices: [h.device] });
        if (serves.chat) expect(await chat("contract-a")).toEqual({ status: 200 });
      }, 30_000);
    });
  });
}
