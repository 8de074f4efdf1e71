import { describe, expect, test } from "bun:test";
import type { RankSnapshot } from "../../src/neuron/tp/control-block.ts";
import { FlightRecorder, formatFlightRecord } from "../../src/neuron/tp/flight-recorder.ts";

const ranks = (seq: number): RankSnapshot[] => [
  { rank: 0, state: "busy", phase: "collective", seq, step: seq, lastError: 0 },
  { rank: 1, state: "live", phase: "idle", seq: seq - 1, step: seq - 1, lastError: 0 },
];

describe("flight recorder", () => {
  test("keeps only the last `capacity` steps, oldest first", () => {
    const recorder = new FlightRecorder(3);
    for (let step = 1; step <= 5; step++) {
      const record = recorder.begin({ step, batchSize: step, tokens: step * 10, startedAt: 1_000 * step });
      recorder.finish(record, "ok", 5, ranks(step));
    }
    expect(recorder.size).toBe(3);
    expect(recorder.snapshot().map((r) => r.step)).toEqual([3, 4, 5]);
  });

  test("a step still running shows as running; the dump names each rank's collective state", () => {
    const recorder = new FlightRecorder(4);
    const done = recorder.begin({ step: 7, batchSize: 2, tokens: 64, startedAt: Date.UTC(2025, 0, 1) });
    recorder.finish(done, "timeout", 120_000, ranks(7), "step timed out");
    recorder.begin({ step: 8, batchSize: 1, tokens: 1, startedAt: Date.UTC(2025, 0, 1, 0, 2) });
    const lines = formatFlightRecord(recorder.snapshot());
    expect(lines[0]).toBe(
      'step=7 batch=2 tokens=64 started=2025-01-01T00:00:00.000Z duration=120000ms outcome=timeout ranks=[r0:busy/collective#7 r1:live/idle#6] error="step timed out"',
    );
    expect(lines[1]).toContain("duration=running outcome=running ranks=[-]");
  });

  test("snapshots are copies: later steps do not rewrite a dump already taken", () => {
    const recorder = new FlightRecorder(1);
    recorder.finish(recorder.begin({ step: 1, batchSize: 1, tokens: 1, startedAt: 0 }), "ok", 1, ranks(1));
    const before = recorder.snapshot();
    recorder.begin({ step: 2, batchSize: 1, tokens: 1, startedAt: 0 });
    expect(before[0]?.step).toBe(1);
  });

  test("rejects a capacity that cannot hold a step", () => {
    expect(() => new FlightRecorder(0)).toThrow(RangeError);
  });
});
