/**
 * Workers bind the native libraries one at a time: a turn starts when the
 * one before it has ended, whether it bound, failed, or ran out of time.
 */
import { expect, test } from "bun:test";
import { oneBindingAtATime } from "../../src/neuron/engine/binding-turns.ts";

test("turns run one after another, and a failed one does not stop the next", async () => {
  const log: string[] = [];
  const bind =
    (name: string, ms: number, fail = false) =>
    async () => {
      log.push(`${name} start`);
      await Bun.sleep(ms);
      log.push(`${name} end`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
  const a = oneBindingAtATime(bind("a", 20));
  const b = oneBindingAtATime(bind("b", 5, true));
  const c = oneBindingAtATime(bind("c", 1));
  expect(await a).toBe("a");
  await expect(b).rejects.toThrow("b failed");
  expect(await c).toBe("c");
  expect(log).toEqual(["a start", "a end", "b start", "b end", "c start", "c end"]);
});

test("a turn that outlasts its time stops holding up the next one", async () => {
  let release!: () => void;
  const stuck = oneBindingAtATime(
    () => new Promise<string>((resolve) => (release = () => resolve("late"))),
    30,
  );
  const started = performance.now();
  expect(await oneBindingAtATime(async () => "next")).toBe("next");
  expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  release();
  expect(await stuck).toBe("late");
});
