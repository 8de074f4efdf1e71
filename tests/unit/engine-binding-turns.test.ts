/**
 * Workers bind the native libraries one at a time: a turn starts when the
 * one before it has ended, whether it bound, failed, or ran out of time.
 */
import { expect, test } from "bun:test";
import { oneBindingAtATime } from "../../src/neuron/engine/binding-turns.ts";

test("turns run one after another, and a failed one does not stop the next", async () => {
  const log: string[] = [];
  // Each bind takes two promise hops: turns that overlapped would interleave their lines.
  const bind =
    (name: string, fail = false) =>
    async () => {
      log.push(`${name} start`);
      await Promise.resolve();
      await Promise.resolve();
      log.push(`${name} end`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
  const a = oneBindingAtATime(bind("a"));
  const b = oneBindingAtATime(bind("b", true));
  const c = oneBindingAtATime(bind("c"));
  expect(await a).toBe("a");
  await expect(b).rejects.toThrow("b failed");
  expect(await c).toBe("c");
  expect(log).toEqual(["a start", "a end", "b start", "b end", "c start", "c end"]);
});

test("a turn that outlasts its time stops holding up the next one", async () => {
  let release!: () => void;
  let stuckEnded = false;
  const stuck = oneBindingAtATime(
    () => new Promise<string>((resolve) => (release = () => resolve("late"))),
    30,
  ).finally(() => {
    stuckEnded = true;
  });
  // The next turn runs while the stuck one has still not ended: its time ran out.
  expect(await oneBindingAtATime(async () => "next")).toBe("next");
  expect(stuckEnded).toBe(false);
  release();
  expect(await stuck).toBe("late");
});
