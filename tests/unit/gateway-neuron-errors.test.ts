import { describe, expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import { classifyNeuronError, errorFromResponse, isNetworkFailure } from "../../src/gateway/neuron-client.ts";

describe("errorFromResponse", () => {
  const cases: {
    name: string;
    status: number;
    body: unknown;
    code: string;
    retryable: boolean;
    message: string;
  }[] = [
    {
      name: "a code of ours is kept",
      status: 507,
      body: { error: { code: "insufficient_memory", message: "no room" } },
      code: "insufficient_memory",
      retryable: false,
      message: "neuron n: no room",
    },
    {
      name: "an unknown code falls back to the status",
      status: 429,
      body: { error: { code: "busy", message: "queue full" } },
      code: "rate_limited",
      retryable: true,
      message: "neuron n: queue full",
    },
    {
      name: "a bare 500 is the upstream's fault, worth another node",
      status: 500,
      body: "oops",
      code: "upstream_error",
      retryable: true,
      message: "neuron n: HTTP 500",
    },
    {
      name: "a string error envelope is read",
      status: 503,
      body: { error: "draining" },
      code: "unavailable",
      retryable: true,
      message: "neuron n: draining",
    },
    {
      name: "an unknown 4xx is the client's problem",
      status: 418,
      body: {},
      code: "invalid_request",
      retryable: false,
      message: "neuron n: HTTP 418",
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const error = errorFromResponse("n", c.status, c.body);
      expect({ code: error.code as string, retryable: error.retryable, message: error.message }).toEqual({
        code: c.code,
        retryable: c.retryable,
        message: c.message,
      });
    });
  }

  test("Retry-After is carried", () => {
    expect(errorFromResponse("n", 429, {}, "7").retryAfterS).toBe(7);
  });
});

describe("classifyNeuronError", () => {
  const network = ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ConnectionRefused", "ConnectionClosed"];
  for (const code of network) {
    test(`${code} → unavailable, retryable, a network failure`, () => {
      const error = classifyNeuronError(Object.assign(new TypeError(code), { code }), "n");
      expect(error).toMatchObject({ code: "unavailable", retryable: true });
      expect(isNetworkFailure(error)).toBe(true);
    });
  }

  test("a network code in the cause chain counts", () => {
    const inner = Object.assign(new Error("reset"), { code: "ECONNRESET" });
    expect(classifyNeuronError(new Error("fetch failed", { cause: inner }), "n").code).toBe("unavailable");
  });

  test("a timeout → timeout (504, retryable), not a network failure", () => {
    const error = classifyNeuronError(new DOMException("The operation timed out.", "TimeoutError"), "n");
    expect(error).toMatchObject({ code: "timeout", status: 504, retryable: true });
    expect(isNetworkFailure(error)).toBe(false);
  });

  test("CortexErrors pass through unchanged", () => {
    const original = new CortexError("invalid_request", "bad");
    expect(classifyNeuronError(original, "n")).toBe(original);
  });
});
