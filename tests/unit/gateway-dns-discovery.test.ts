import { describe, expect, test } from "bun:test";
import { ConfigError } from "../../src/core/config/config-error.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import {
  type DnsLookup,
  nodeName,
  parseDnsSpec,
  planRound,
  resolveEndpoints,
} from "../../src/gateway/discovery/dns-discovery.ts";

const E = (address: string) => `http://${address}:13131`;

describe("planRound", () => {
  test("a new address joins under the name it reports", () => {
    const plan = planRound(new Map(), [E("10.0.0.1")], new Map([[E("10.0.0.1"), "gpu-a"]]), new Set());
    expect(plan.added).toEqual([{ endpoint: E("10.0.0.1"), name: "gpu-a" }]);
    expect([...plan.members]).toEqual([[E("10.0.0.1"), "gpu-a"]]);
  });

  test("a vanished address retires its node; the others stay", () => {
    const members = new Map([
      [E("10.0.0.1"), "gpu-a"],
      [E("10.0.0.2"), "gpu-b"],
    ]);
    const plan = planRound(members, [E("10.0.0.2")], new Map(), new Set());
    expect(plan.retired).toEqual(["gpu-a"]);
    expect(plan.added).toEqual([]);
    expect([...plan.members]).toEqual([[E("10.0.0.2"), "gpu-b"]]);
  });

  test("a node at a new address in the same round moved: same name, not retired", () => {
    const members = new Map([[E("10.0.0.1"), "gpu-a"]]);
    const plan = planRound(members, [E("10.0.0.9")], new Map([[E("10.0.0.9"), "gpu-a"]]), new Set());
    expect(plan.moved).toEqual([{ endpoint: E("10.0.0.9"), name: "gpu-a" }]);
    expect(plan.retired).toEqual([]);
    expect(plan.added).toEqual([]);
  });

  test("an address that could not be asked its name waits for the next round", () => {
    const plan = planRound(new Map(), [E("10.0.0.1")], new Map(), new Set());
    expect(plan.added).toEqual([]);
    expect(plan.members.size).toBe(0);
  });

  test("two live neurons claiming one name, or a static neuron's name: the newcomer keeps its address in its name", () => {
    const members = new Map([[E("10.0.0.1"), "gpu-a"]]);
    const plan = planRound(
      members,
      [E("10.0.0.1"), E("10.0.0.2"), E("10.0.0.3")],
      new Map([
        [E("10.0.0.2"), "gpu-a"],
        [E("10.0.0.3"), "static-1"],
      ]),
      new Set(["static-1"]),
    );
    expect(plan.added).toEqual([
      { endpoint: E("10.0.0.2"), name: "gpu-a-10.0.0.2-13131" },
      { endpoint: E("10.0.0.3"), name: "static-1-10.0.0.3-13131" },
    ]);
  });

  test("reported names become safe node names", () => {
    expect(nodeName("ip-10-0-0-1.ec2.internal")).toBe("ip-10-0-0-1.ec2.internal");
    expect(nodeName('evil"name\nwith spaces')).toBe("evil-name-with-spaces");
    expect(nodeName("---")).toBe("node");
  });
});

describe("resolveEndpoints", () => {
  const lookup: DnsLookup = {
    addresses: async (name) =>
      ({ "svc.local": ["10.0.0.2", "10.0.0.1", "fd00::1"], "a.svc.local.": ["10.0.0.7"] })[name] ?? [],
    srv: async (name) => (name === "_neuron._tcp.svc.local" ? [{ name: "a.svc.local.", port: 9000 }] : []),
  };

  test("A/AAAA records on the configured port, sorted, IPv6 bracketed", async () => {
    expect(await resolveEndpoints(parseDnsSpec("svc.local:13131"), lookup)).toEqual([
      "http://10.0.0.1:13131",
      "http://10.0.0.2:13131",
      "http://[fd00::1]:13131",
    ]);
  });

  test("SRV records give targets and ports", async () => {
    expect(await resolveEndpoints(parseDnsSpec("_neuron._tcp.svc.local"), lookup)).toEqual([
      "http://10.0.0.7:9000",
    ]);
  });

  test("a resolver failure is thrown, not read as an empty fleet", async () => {
    const failing: DnsLookup = {
      addresses: async () => {
        throw Object.assign(new Error("queryA ETIMEOUT"), { code: "ETIMEOUT" });
      },
      srv: async () => [],
    };
    await expect(resolveEndpoints(parseDnsSpec("svc.local:1"), failing)).rejects.toThrow("ETIMEOUT");
  });
});

describe("[discovery] config", () => {
  test("dns must be name:port or an SRV name", () => {
    const env = { CORTEX_DISCOVERY_DNS: "cortex-neuron.cortex.svc" };
    expect(() => loadConfig({ env, cwd: "/nonexistent" })).toThrow(ConfigError);
    try {
      loadConfig({ env, cwd: "/nonexistent" });
    } catch (error) {
      expect((error as ConfigError).problems[0]).toContain(
        'environment CORTEX_DISCOVERY_DNS: expected "name:port" or an SRV name starting with "_"',
      );
    }
    expect(
      loadConfig({ env: { CORTEX_DISCOVERY_DNS: "_neuron._tcp.cortex.svc" }, cwd: "/nonexistent" }).file
        .discovery.dns,
    ).toBe("_neuron._tcp.cortex.svc");
  });
});
