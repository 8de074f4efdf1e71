import { describe, expect, test } from "bun:test";
import type { CanonicalMessage, CanonicalRequest } from "../../src/dialects/canonical.ts";
import { pickLoadedNode } from "../../src/gateway/routing/pick-loaded-node.ts";
import { PrefixAffinity } from "../../src/gateway/routing/prefix-affinity.ts";
import { prefixChain } from "../../src/gateway/routing/prefix-chain.ts";
import { fleet, model, node } from "./gateway-fixtures.ts";

const text = (role: "system" | "user" | "assistant", value: string) =>
  ({ role, content: [{ type: "text", text: value }] }) as CanonicalMessage;

function request(messages: CanonicalMessage[], tools: CanonicalRequest["tools"] = []) {
  return { model: "m", messages, tools };
}

const system = text("system", "You are an agent.");
const turn1 = [system, text("user", "Fix the build.")];
const turn2 = [...turn1, text("assistant", "Done."), text("user", "Now the tests.")];

describe("prefix chain", () => {
  test("a later turn extends the earlier turn's chain; system and tools are the first link", () => {
    const a = prefixChain(request(turn1));
    const b = prefixChain(request(turn2));
    expect(a).toHaveLength(2);
    expect(b).toHaveLength(4);
    expect(b.slice(0, 2)).toEqual([...a]);
  });

  test("another system prompt, other tools or an edited message change the chain from there on", () => {
    const base = prefixChain(request(turn2));
    expect(prefixChain(request([text("system", "Other."), ...turn2.slice(1)]))[0]).not.toBe(base[0]);
    const tool = { name: "read", parameters: { type: "object" } };
    expect(prefixChain(request(turn2, [tool]))[0]).not.toBe(base[0]);
    const edited = prefixChain(request([system, text("user", "Fix the BUILD."), ...turn2.slice(2)]));
    expect(edited[0]).toBe(base[0]);
    expect(edited[1]).not.toBe(base[1]);
    expect(prefixChain(request(turn2), "other-model")[0]).not.toBe(base[0]);
  });
});

describe("per-node memory of served prefixes", () => {
  test("the longest served prefix counts, per node", () => {
    const served = new PrefixAffinity(100);
    served.record("a", prefixChain(request(turn1)));
    expect(served.matched("a", prefixChain(request(turn2)))).toBe(2);
    expect(served.matched("b", prefixChain(request(turn2)))).toBe(0);
    served.forget("a");
    expect(served.matched("a", prefixChain(request(turn2)))).toBe(0);
  });

  test("stays bounded, forgetting the least recently served links first", () => {
    const served = new PrefixAffinity(3);
    const old = prefixChain(request(turn1));
    served.record("a", old);
    served.record("a", prefixChain(request([text("system", "Other."), text("user", "Hi.")])));
    expect(served.matched("a", old)).toBe(2);
    served.record("a", prefixChain(request([text("system", "Third."), text("user", "Hi.")])));
    expect(served.matched("a", old)).toBe(0);
  });
});

describe("choosing among loaded copies", () => {
  const view = fleet(
    node("a", { loaded: [model("m", { inFlight: 3 })] }),
    node("b", { loaded: [model("m", { inFlight: 1 })] }),
  );
  const prefers = (node: string, maxImbalance: number) => ({
    matched: (candidate: string) => (candidate === node ? 5 : 0),
    maxImbalance,
  });

  test("the node holding the prefix wins while it is not too much busier", () => {
    expect(pickLoadedNode(view, "m", { affinity: prefers("a", 2) })?.node).toBe("a");
  });

  test("beyond the allowed imbalance the least busy node wins", () => {
    expect(pickLoadedNode(view, "m", { affinity: prefers("a", 1) })?.node).toBe("b");
  });

  test("no match anywhere: least busy", () => {
    expect(pickLoadedNode(view, "m", { affinity: prefers("x", 10) })?.node).toBe("b");
  });
});
