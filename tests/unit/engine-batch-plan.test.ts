import { describe, expect, test } from "bun:test";
import { planBatch } from "../../src/neuron/engine/batch-scheduler.ts";

interface Seq {
  name: string;
  slot: number;
  prompt: { length: number };
  prefilled: number;
  paused: boolean;
}
const generating = (name: string, slot: number): Seq => ({
  name,
  slot,
  prompt: { length: 10 },
  prefilled: 10,
  paused: false,
});
const prefilling = (name: string, slot: number, length: number, prefilled = 0): Seq => ({
  name,
  slot,
  prompt: { length },
  prefilled,
  paused: false,
});
const plan = (arrived: Seq[], room: number) =>
  planBatch(arrived, room).map(({ seq, take }) => `${seq.name}@${seq.slot}:${take}`);

// The batch is written in the plan's order. Slots are KV streams, and llama.cpp runs a batch as
// one ubatch only when its sequences first appear in ascending, consecutive slot order.
describe("what one decode step holds", () => {
  test("sequences that arrived in any slot order are written in ascending slot order", () => {
    const arrived = [generating("a", 2), generating("b", 3), generating("c", 0), generating("d", 1)];
    expect(plan(arrived, 512)).toEqual(["c@0:1", "d@1:1", "a@2:1", "b@3:1"]);
  });

  test("generating sequences get one token first; prompts share the rest in arrival order", () => {
    const arrived = [
      prefilling("p1", 3, 300),
      generating("g", 1),
      prefilling("p2", 0, 300, 100),
      prefilling("p3", 2, 50),
    ];
    // 8 tokens of room: g takes 1, p1 (first to arrive) the other 7; p2 and p3 wait.
    expect(plan(arrived, 8)).toEqual(["g@1:1", "p1@3:7"]);
    // 512: p1 300, p2 the 200 it has left, p3 what remains.
    expect(plan(arrived, 512)).toEqual(["p2@0:200", "g@1:1", "p3@2:11", "p1@3:300"]);
  });

  test("paused sequences are left out", () => {
    const paused = { ...generating("z", 0), paused: true };
    expect(plan([generating("a", 1), paused, prefilling("p", 2, 4)], 512)).toEqual(["a@1:1", "p@2:4"]);
  });
});
