import { expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import { Admission } from "../../src/gateway/routing/admission.ts";

function admission(queueTimeoutS = 60) {
  return new Admission({ maxConcurrency: 2, queueSize: 2, queueTimeoutS });
}

test("over the concurrency limit requests queue, over the queue they get 429 with Retry-After", async () => {
  const gate = admission();
  await gate.acquire("m");
  await gate.acquire("m");
  void gate.acquire("m");
  void gate.acquire("m");
  expect(gate.depth("m")).toEqual({ inFlight: 2, queued: 2 });
  const error = await gate.acquire("m").catch((e: unknown) => e);
  expect(error).toBeInstanceOf(CortexError);
  expect(error).toMatchObject({ code: "rate_limited", status: 429 });
  expect((error as CortexError).retryAfterS).toBeGreaterThan(0);
});

test("limits are per model", async () => {
  const gate = admission();
  await gate.acquire("a");
  await gate.acquire("a");
  await gate.acquire("b");
  expect(gate.depths()).toEqual(
    new Map([
      ["a", { inFlight: 2, queued: 0 }],
      ["b", { inFlight: 1, queued: 0 }],
    ]),
  );
});

test("a released slot goes to the oldest waiter (FIFO); release is idempotent", async () => {
  const gate = admission();
  const first = await gate.acquire("m");
  await gate.acquire("m");
  const order: string[] = [];
  const w1 = gate.acquire("m").then((release) => {
    order.push("w1");
    return release;
  });
  const w2 = gate.acquire("m").then(() => order.push("w2"));
  first();
  first();
  await w1;
  expect(order).toEqual(["w1"]);
  expect(gate.depth("m")).toEqual({ inFlight: 2, queued: 1 });
  (await w1)();
  await w2;
  expect(order).toEqual(["w1", "w2"]);
});

test("abort while queued removes the waiter", async () => {
  const gate = admission();
  await gate.acquire("m");
  await gate.acquire("m");
  const controller = new AbortController();
  const waiting = gate.acquire("m", controller.signal);
  expect(gate.depth("m").queued).toBe(1);
  controller.abort(new Error("client went away"));
  await expect(waiting).rejects.toThrow("client went away");
  expect(gate.depth("m")).toEqual({ inFlight: 2, queued: 0 });
});

test("a request queued past queue_timeout_s gets 503 with Retry-After", async () => {
  const gate = admission(0.02);
  await gate.acquire("m");
  await gate.acquire("m");
  const error = await gate.acquire("m").catch((e: unknown) => e);
  expect(error).toMatchObject({ code: "unavailable", status: 503 });
  expect((error as CortexError).retryAfterS).toBeGreaterThan(0);
  expect(gate.depth("m").queued).toBe(0);
});

test("idle models leave no state behind", async () => {
  const gate = admission();
  const release = await gate.acquire("m");
  release();
  expect(gate.depths().size).toBe(0);
});
