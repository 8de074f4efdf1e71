import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exposureProblem, isLoopback } from "../../src/core/config/exposure.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cortex-exposure-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFrom(toml: string, env: Record<string, string> = {}) {
  const path = join(dir, "site.toml");
  writeFileSync(path, toml);
  return loadConfig({ path, env });
}

describe("isLoopback", () => {
  test.each(["127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"])(
    "%s is",
    (host) => expect(isLoopback(host)).toBe(true),
  );
  test.each(["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.com", "128.0.0.1", "::ffff:10.0.0.1"])(
    "%s is not",
    (host) => expect(isLoopback(host)).toBe(false),
  );
});

describe("exposureProblem", () => {
  test("the defaults listen on loopback and start", () => {
    const config = loadConfig({ env: {}, cwd: dir });
    expect(config.gatewayListen.hostname).toBe("127.0.0.1");
    expect(config.neuronListen.hostname).toBe("127.0.0.1");
    expect(exposureProblem(config, "gateway")).toBeUndefined();
    expect(exposureProblem(config, "neuron")).toBeUndefined();
  });

  test("an open gateway on every interface is refused, naming the file, the key and the ways out", () => {
    const problem = exposureProblem(configFrom('[gateway]\nlisten = "0.0.0.0:31313"\n'), "gateway");
    expect(problem).toBe(
      "site.toml: gateway.listen: 0.0.0.0:31313 is reachable from other machines and gateway.api_keys is empty, " +
        "so anyone who reaches it could use it; set gateway.api_keys (env CORTEX_API_KEYS), listen on 127.0.0.1, " +
        "or set gateway.allow_unauthenticated = true to serve it open on purpose",
    );
  });

  test("a port alone means every interface", () => {
    expect(exposureProblem(configFrom('[gateway]\nlisten = ":31313"\n'), "gateway")).toContain(
      "0.0.0.0:31313",
    );
  });

  test("an address from the environment names the variable", () => {
    const problem = exposureProblem(configFrom("", { CORTEX_GATEWAY_LISTEN: "10.1.2.3:80" }), "gateway");
    expect(problem?.startsWith("environment CORTEX_GATEWAY_LISTEN: 10.1.2.3:80 is reachable")).toBe(true);
  });

  test("api_keys or allow_unauthenticated let a gateway listen widely", () => {
    expect(
      exposureProblem(configFrom('[gateway]\nlisten = "0.0.0.0:1"\napi_keys = ["k"]\n'), "gateway"),
    ).toBeUndefined();
    expect(
      exposureProblem(
        configFrom('[gateway]\nlisten = "0.0.0.0:1"\nallow_unauthenticated = true\n'),
        "gateway",
      ),
    ).toBeUndefined();
  });

  test("a neuron needs auth_token or allow_unauthenticated beyond loopback; the gateway's settings do not count", () => {
    const open = configFrom('[gateway]\napi_keys = ["k"]\n[neuron]\nlisten = "[::]:13131"\n');
    expect(exposureProblem(open, "neuron")).toContain(
      "site.toml: neuron.listen: [::]:13131 is reachable from other machines and neuron.auth_token is empty",
    );
    expect(exposureProblem(open, "gateway")).toBeUndefined();
    expect(
      exposureProblem(configFrom('[neuron]\nlisten = "0.0.0.0:1"\nauth_token = "t"\n'), "neuron"),
    ).toBeUndefined();
    expect(
      exposureProblem(configFrom('[neuron]\nlisten = "0.0.0.0:1"\nallow_unauthenticated = true\n'), "neuron"),
    ).toBeUndefined();
  });
});
