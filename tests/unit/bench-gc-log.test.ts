import { describe, expect, test } from "bun:test";
import { readGcLog } from "../../bench/gateway-gc.ts";

// Lines of a real `BUN_JSC_logGC=1` log (Bun 1.4), cut short where they run on.
const LOG = `Requesting GC because bytes allocated this cycle: 17339992 exceed bytes allowed: 17326598
[GC<0x364b7f9c118>: START M 24717kb => EdenCollection, a=0kb hf=0.000 mu=0.600 ...]
[GC<0x364b7f9c118>: M a=1172kb hf=0.051 mu=0.569 v=3983kb ... => 10696kb, p=2.316493ms (max 2.316493), cycle 11.9ms END]
GC END!
Requesting GC because bytes allocated this cycle: 17332376 exceed bytes allowed: 17326598
[GC<0x364b7f9c118>: START M 28029kb => EdenCollection, a=0kb ...]
[GC<0x364b7f9c118>: M a=131kb ... => 12839kb, p=1.774738ms (max 2.316493), cycle 9.1ms END]
[GC<0x364b7f9c118>: START M 48390kb => FullCollection, a=0kb ...]
[GC<0x364b7f9c118>: M a=92kb ... => 10594kb, p=7.288130ms (max 7.288130), cycle 21.6ms END]
Requesting GC because bytes allocated this cycle: 21690786 exceed bytes allowed: 21687655
[GC<0x364b7f9c118>: START M 43541kb => EdenCollection, a=0kb ...]
[GC<0x364b7f9c118>: M a=392kb ... => 12945kb, p=2.641248ms (max 7.288130), cycle 12.0ms END]`;

describe("JSC's GC log", () => {
  test("allocation, what survived each eden collection, collections and pauses", () => {
    const gc = readGcLog(LOG);
    expect(gc.allocatedBytes).toBe(17339992 + 17332376 + 21690786);
    expect(gc.eden).toBe(3);
    expect(gc.full).toBe(1);
    // 10696 → 12839 after the second eden; the third counts from the full collection's 10594.
    expect(gc.promotedBytes).toBe((12839 - 10696 + (12945 - 10594)) * 1024);
    expect(gc.pauseMs).toBeCloseTo(2.316493 + 1.774738 + 7.28813 + 2.641248, 5);
  });

  test("a window with no collection in it is all zeros", () => {
    expect(readGcLog("")).toEqual({ allocatedBytes: 0, promotedBytes: 0, eden: 0, full: 0, pauseMs: 0 });
  });
});
