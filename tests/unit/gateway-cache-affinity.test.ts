import { describe, expect, test } from "bun:test";
import type {
  CanonicalMessage,
  CanonicalRequest,
  ImagePart,
  TextPart,
  ThinkingPart,
  ToolCallPart,
  ToolResultPart,
} from "../../src/dialects/canonical.ts";
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

describe("a message's link", () => {
  // One of each part, every field present (Required<…>: a field added to a part type must be added
  // here, and then a link that ignores it fails the test below).
  const long = (tag: string) => `${tag}: ${"a long text, as an agent's turns are. ".repeat(4)}`;
  const textPart: Required<TextPart> = { type: "text", text: long("text") };
  const thinking: Required<ThinkingPart> = { type: "thinking", text: long("thinking") };
  const call: Required<ToolCallPart> = {
    type: "tool_call",
    id: "call_1",
    name: "read",
    arguments: long("args"),
  };
  const byUrl: Required<ImagePart> = { type: "image", source: { kind: "url", url: "https://x.test/a.png" } };
  const inline: Required<ImagePart> = {
    type: "image",
    source: { kind: "base64", mediaType: "image/png", data: long("png") },
  };
  const result: Required<ToolResultPart> = {
    type: "tool_result",
    toolCallId: "call_1",
    content: [{ type: "text", text: "short" }, byUrl],
    isError: false,
  };
  const history: CanonicalMessage[] = [
    { role: "system", content: [{ type: "text", text: "short system" }], asParts: true },
    { role: "user", content: [textPart, inline], asParts: true },
    { role: "assistant", content: [thinking, textPart, call] },
    { role: "tool", content: [result] },
    { role: "user", content: [{ type: "text", text: "ok" }] },
  ];

  /** The fields that say which kind of message or part this is: changed below by hand, to another kind. */
  const KINDS = new Set(["role", "type", "kind"]);

  /** Every copy of `value` with one string or boolean changed, or one array shortened (kinds kept). */
  function mutations(value: unknown): unknown[] {
    if (typeof value === "string") return [`${value}x`, value.slice(1)];
    if (typeof value === "boolean") return [!value];
    if (Array.isArray(value))
      return [
        value.slice(1),
        ...value.flatMap((item, i) => mutations(item).map((m) => value.map((v, j) => (j === i ? m : v)))),
      ];
    if (typeof value === "object" && value !== null)
      return Object.entries(value).flatMap(([key, field]) =>
        KINDS.has(key) ? [] : mutations(field).map((m) => ({ ...value, [key]: m })),
      );
    return [];
  }

  test("equal messages give equal links; any change to one gives another from there on", () => {
    const base = prefixChain(request(history));
    expect(prefixChain(request(structuredClone(history)))).toEqual(base);
    const changed = history.flatMap((message, i) =>
      mutations(message).map((m) => ({ at: i, messages: history.map((h, j) => (j === i ? m : h)) })),
    );
    expect(changed.length).toBeGreaterThan(30);
    for (const { at, messages } of changed) {
      const chain = prefixChain(request(messages as CanonicalMessage[]));
      // The system message is in link 0; message i ≥ 1 is link i.
      const link = at === 0 ? 0 : at;
      expect(chain.slice(0, link)).toEqual(base.slice(0, link));
      expect(chain[link]).not.toBe(base[link]);
    }
  });

  test("text moved between two parts, or between a part's fields, changes the link", () => {
    const split = (a: string, b: string) =>
      prefixChain(
        request([
          system,
          {
            role: "user",
            content: [
              { type: "text", text: a },
              { type: "text", text: b },
            ],
          },
        ]),
      )[1];
    expect(split("ab", "c")).not.toBe(split("a", "bc"));
    const called = (id: string, name: string) =>
      prefixChain(
        request([system, { role: "assistant", content: [{ type: "tool_call", id, name, arguments: "{}" }] }]),
      )[1];
    expect(called("call_1", "read")).not.toBe(called("call_1r", "ead"));
  });

  test("the same text as another role, or as another kind of part, changes the link", () => {
    const one = (message: CanonicalMessage) => prefixChain(request([system, message]))[1];
    const said = one({ role: "user", content: [{ type: "text", text: "same" }] });
    expect(one({ role: "assistant", content: [{ type: "text", text: "same" }] })).not.toBe(said);
    expect(one({ role: "assistant", content: [{ type: "thinking", text: "same" }] })).not.toBe(
      one({ role: "assistant", content: [{ type: "text", text: "same" }] }),
    );
    expect(
      one({ role: "user", content: [{ type: "image", source: { kind: "url", url: "same" } }] }),
    ).not.toBe(said);
  });
});

describe("session hints", () => {
  const session = (key: string, messages: CanonicalMessage[]) => ({ ...request(messages), sessionKey: key });

  test("a session's requests share a chain of their own, whatever other sessions send", () => {
    const a1 = prefixChain(session("s-a", turn1));
    const a2 = prefixChain(session("s-a", turn2));
    const b1 = prefixChain(session("s-b", turn1));
    expect(a2.slice(0, a1.length)).toEqual([...a1]);
    // Same system prompt and first message, another session: nothing in common.
    expect(b1.some((link) => a1.includes(link))).toBe(false);
    expect(prefixChain(request(turn1)).some((link) => a1.includes(link))).toBe(false);
  });

  test("same session → the node that served it; sessions spread to the least busy; a busy node gives way", () => {
    const served = new PrefixAffinity(100);
    served.record("n1", prefixChain(session("s-a", turn1)));
    served.record("n2", prefixChain(session("s-b", turn1)));
    expect(served.matched("n1", prefixChain(session("s-a", turn2)))).toBeGreaterThan(0);
    expect(served.matched("n2", prefixChain(session("s-a", turn2)))).toBe(0);
    // A third session with the same prompt matches neither node: it is placed by load.
    expect(served.matched("n1", prefixChain(session("s-c", turn1)))).toBe(0);
    expect(served.matched("n2", prefixChain(session("s-c", turn1)))).toBe(0);
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

describe("replicas that share nothing agree on a new conversation's node (rendezvous)", () => {
  const three = (counts: [number, number, number]) =>
    fleet(
      node("a", { loaded: [model("m", { inFlight: counts[0] })] }),
      node("b", { loaded: [model("m", { inFlight: counts[1] })] }),
      node("c", { loaded: [model("m", { inFlight: counts[2] })] }),
    );
  const conversations = Array.from({ length: 60 }, (_, i) =>
    prefixChain(request([system, text("user", `Task number ${i}.`)])),
  );
  const pick = (view: ReturnType<typeof three>, chain: (typeof conversations)[number], maxImbalance = 4) =>
    pickLoadedNode(view, "m", {
      affinity: { matched: () => 0, maxImbalance, conversation: chain.conversation },
    })?.node;

  test("a conversation's key is the same in every turn, and differs between conversations", () => {
    expect(prefixChain(request(turn2)).conversation).toBe(prefixChain(request(turn1)).conversation as bigint);
    expect(new Set(conversations.map((chain) => chain.conversation)).size).toBe(60);
    const session = { ...request(turn1), sessionKey: "s-1" };
    expect(prefixChain(session).conversation).toBe(
      prefixChain({ ...request(turn2), sessionKey: "s-1" })[0] as bigint,
    );
  });

  test("the same node whatever the node order, and conversations spread over the nodes", () => {
    const view = three([0, 0, 0]);
    const reversed = fleet(...[...view.nodes].reverse());
    const picks = conversations.map((chain) => pick(view, chain));
    expect(conversations.map((chain) => pick(reversed, chain))).toEqual(picks);
    for (const name of ["a", "b", "c"]) expect(picks.filter((p) => p === name).length).toBeGreaterThan(5);
  });

  test("a node that leaves moves only the conversations it held", () => {
    const before = conversations.map((chain) => pick(three([0, 0, 0]), chain));
    const withoutC = fleet(node("a", { loaded: [model("m")] }), node("b", { loaded: [model("m")] }));
    conversations.forEach((chain, i) => {
      if (before[i] !== "c") expect(pick(withoutC, chain)).toBe(before[i] as string);
    });
  });

  test("a winner busier than the allowed imbalance gives way to a copy within it", () => {
    const chain = conversations.find(
      (c) => pick(three([0, 0, 0]), c) === "a",
    ) as (typeof conversations)[number];
    expect(pick(three([5, 0, 0]), chain, 4)).not.toBe("a");
    expect(pick(three([4, 0, 0]), chain, 4)).toBe("a");
  });
});

describe("the conversation's node shared by the replicas (Redis) outranks each replica's own guess", () => {
  const two = (counts: [number, number]) =>
    fleet(
      node("a", { loaded: [model("m", { inFlight: counts[0] })] }),
      node("b", { loaded: [model("m", { inFlight: counts[1] })] }),
    );
  const chain = prefixChain(request(turn1));
  const winner = pickLoadedNode(two([0, 0]), "m", {
    affinity: { matched: () => 0, maxImbalance: 4, conversation: chain.conversation },
  })?.node as string;
  const other = winner === "a" ? "b" : "a";
  const pick = (counts: [number, number], affinity: { home?: string; matched?: string }) =>
    pickLoadedNode(two(counts), "m", {
      affinity: {
        matched: (candidate) => (candidate === affinity.matched ? 3 : 0),
        maxImbalance: 4,
        conversation: chain.conversation,
        home: affinity.home,
      },
    })?.node;

  test("over the rendezvous winner, and over the node this replica's memory points to", () => {
    expect(pick([0, 0], { home: other })).toBe(other);
    expect(pick([0, 0], { home: other, matched: winner })).toBe(other);
  });

  test("a shared node busier than the allowed imbalance gives way, as a remembered one does", () => {
    const busy: [number, number] = other === "a" ? [5, 0] : [0, 5];
    expect(pick(busy, { home: other })).toBe(winner);
  });

  test("a shared node without a ready copy (gone, unloaded) is passed over for the usual choice", () => {
    expect(pick([0, 0], { home: "gone" })).toBe(winner);
    expect(pick([0, 0], { home: "gone", matched: other })).toBe(other);
  });
});

describe("where the session hints come from", () => {
  test("Claude Code's metadata.user_id session_id, OpenAI's prompt_cache_key (chat and Responses)", async () => {
    const { parseAnthropicRequest } = await import("../../src/dialects/anthropic/parse-request.ts");
    const { parseOpenAIRequest } = await import("../../src/dialects/openai/parse-request.ts");
    const { parseResponsesRequest } = await import("../../src/dialects/responses/parse-request.ts");
    const userId = JSON.stringify({ device_id: "d", account_uuid: "", session_id: "0c1d-session" });
    const anthropic = parseAnthropicRequest({
      model: "m",
      max_tokens: 10,
      metadata: { user_id: userId },
      messages: [{ role: "user", content: "hi" }],
    });
    expect(anthropic.sessionKey).toBe("0c1d-session");
    expect(
      parseAnthropicRequest({
        model: "m",
        max_tokens: 10,
        metadata: { user_id: "user_1" },
        messages: [{ role: "user", content: "hi" }],
      }).sessionKey,
    ).toBeUndefined();
    const openai = parseOpenAIRequest({
      model: "m",
      prompt_cache_key: "codex-1",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(openai.sessionKey).toBe("codex-1");
    const responses = parseResponsesRequest({
      model: "m",
      prompt_cache_key: "codex-2",
      input: "hi",
    }).toCanonical([]);
    expect(responses.sessionKey).toBe("codex-2");
  });
});
