import { expect, test } from "bun:test";
import { formatDuration, memoryBar, renderStatus } from "../../src/cli/render-status.ts";
import type { FleetView } from "../../src/core/admin-api.ts";

const GiB = 1024 ** 3;

test("memory bars fill in proportion and never overflow", () => {
  expect(memoryBar(0, 10, 10)).toBe("[..........]");
  expect(memoryBar(5, 10, 10)).toBe("[#####.....]");
  expect(memoryBar(20, 10, 10)).toBe("[##########]");
  expect(memoryBar(1, 0, 4)).toBe("[    ]");
});

test("durations read like an operator would write them", () => {
  expect(formatDuration(4_000)).toBe("4s");
  expect(formatDuration(125_000)).toBe("2m05s");
  expect(formatDuration(2 * 3_600_000 + 60_000)).toBe("2h01m");
});

test("status shows nodes, device memory and loaded models with idle time", () => {
  const now = 1_000_000;
  const fleet: FleetView = {
    gateway: { version: "0.1.0", startedAt: 0 },
    nodes: [
      {
        name: "beast",
        endpoint: "http://beast:13131",
        state: "up",
        devices: [
          {
            id: "cuda-dev-0",
            kind: "cuda",
            index: 0,
            name: "H200",
            memoryTotal: 8 * GiB,
            memoryFree: 2 * GiB,
            poisoned: false,
            loadCycles: 0,
          },
        ],
        loaded: [
          {
            id: "qwen",
            file: "qwen.gguf",
            state: "ready",
            devices: ["cuda-dev-0"],
            contextSize: 8192,
            slots: 4,
            lastUsed: now - 90_000,
            loadedAt: 0,
            inFlight: 0,
            queued: 0,
            memoryBytes: 6 * GiB,
            pinned: true,
            priority: 0,
          },
        ],
      },
      {
        name: "spare",
        endpoint: "http://spare:13131",
        state: "down",
        error: "ECONNREFUSED",
        devices: [],
        loaded: [],
      },
    ],
  };
  const text = renderStatus(fleet, now);
  expect(text).toContain("2 node(s), 1 up");
  expect(text).toMatch(/beast\s+up\s+cuda-dev-0 H200\s+\[###############\.\.\.\.\.\]\s+6\.0 GiB \/ 8\.0 GiB/);
  expect(text).toContain("down (ECONNREFUSED)");
  expect(text).toMatch(/qwen\s+beast\s+ready\s+cuda-dev-0\s+1m30s\s+0\s+0\s+6\.0 GiB\s+yes/);
});
