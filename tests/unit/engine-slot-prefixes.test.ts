import { describe, expect, test } from "bun:test";
import { commonPrefix, SlotPrefixes } from "../../src/neuron/engine/slot-prefixes.ts";

const t = (...tokens: number[]) => Int32Array.from(tokens);

describe("slot choice for prefix reuse", () => {
  test("common prefix counts leading equal tokens", () => {
    expect(commonPrefix(t(1, 2, 3), t(1, 2, 4))).toBe(2);
    expect(commonPrefix(t(1, 2), t(1, 2, 3))).toBe(2);
    expect(commonPrefix(t(), t(1))).toBe(0);
  });

  test("the free slot with the longest common prefix wins", () => {
    const slots = new SlotPrefixes(3);
    for (const [slot, held] of [t(1, 2, 3), t(1, 2, 3, 4, 5), t(9)].entries()) {
      slots.take(slot);
      slots.release(slot, held);
    }
    expect(slots.choose(t(1, 2, 3, 4, 5, 6))).toEqual({ slot: 1, common: 5 });
    expect(slots.choose(t(9, 9))).toEqual({ slot: 2, common: 1 });
  });

  test("ties and misses go to the least recently used slot, an emptied one first", () => {
    const slots = new SlotPrefixes(3);
    for (const slot of [2, 0, 1]) {
      slots.take(slot);
      slots.release(slot, t(100 + slot, 1, 2, 3));
    }
    expect(slots.choose(t(7, 7)).slot).toBe(2);
    slots.take(0);
    slots.release(0, t());
    expect(slots.choose(t(7, 7)).slot).toBe(0);
  });

  test("a few shared template tokens do not claim another conversation's slot", () => {
    const slots = new SlotPrefixes(2);
    slots.take(0);
    slots.release(0, t(1, 2, ...Array.from({ length: 40 }, (_, i) => 10 + i)));
    // Slot 1 never used: a new conversation sharing only the header goes there.
    expect(slots.choose(t(1, 2, 99, 98)).slot).toBe(1);
  });

  test("a busy slot is never chosen", () => {
    const slots = new SlotPrefixes(2);
    slots.take(0);
    slots.release(0, t(5, 6, 7));
    slots.take(0);
    expect(slots.choose(t(5, 6, 7))).toEqual({ slot: 1, common: 0 });
    expect(slots.free).toBe(1);
  });
});

// Each slot is its own KV stream, and llama.cpp decodes the sequences of a step in one ubatch
// only when their slots are consecutive: slots 0 and 2 busy cost two passes over the weights.
describe("a prompt that reuses nothing goes next to the running ones", () => {
  const used = (slots: SlotPrefixes, order: number[]) => {
    for (const slot of order) {
      slots.take(slot);
      slots.release(slot, t(100 + slot, 1, 2, 3));
    }
  };

  test("a free slot beside a busy one before an older one apart from them", () => {
    const slots = new SlotPrefixes(4);
    used(slots, [3, 0, 2, 1]); // slot 3 the least recently used
    slots.take(1);
    // Slots 0 and 2 are beside busy 1; 0 is the older of them. Slot 3 would make a second run.
    expect(slots.choose(t(7, 7)).slot).toBe(0);
    slots.take(0);
    expect(slots.choose(t(7, 7)).slot).toBe(2);
  });

  test("the slot that joins two runs into one wins", () => {
    const slots = new SlotPrefixes(4);
    used(slots, [3, 1, 0, 2]); // slot 3 the least recently used
    slots.take(0);
    slots.take(2);
    // Busy 0 and 2: taking 1 leaves one run, taking 3 (beside 2) leaves two.
    expect(slots.choose(t(7, 7)).slot).toBe(1);
  });

  test("with nothing running, the least recently used as before; a prefix match still wins over adjacency", () => {
    const slots = new SlotPrefixes(4);
    used(slots, [2, 0, 1, 3]);
    expect(slots.choose(t(7, 7)).slot).toBe(2);
    slots.take(0);
    expect(slots.choose(t(103, 1, 2, 3, 9))).toEqual({ slot: 3, common: 4 });
  });
});
