import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../src/core/config/config-error.ts";
import {
  EvictionSection,
  GatewaySection,
  LogSection,
  ModelProfile,
  NeuronRef,
  NeuronSection,
  ResponsesSection,
  StateSection,
} from "../../src/core/config/config-schema.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { parseListen } from "../../src/core/config/parse-listen.ts";
import { parseSize } from "../../src/core/config/parse-size.ts";

function writeConfig(text: string, name = "cortex.toml"): string {
  const dir = mkdtempSync(join(tmpdir(), "cortex-config-"));
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  test("the issue's example parses, with every default applied", () => {
    const path = writeConfig(`
[gateway]
listen = "0.0.0.0:31313"
metrics_listen = "0.0.0.0:31314"
[eviction]
strategy = "lru"
defrag_after_cycles = 50
[[neurons]]
name = "beast"
endpoint = "http://beast.internal:13131"
[[models]]
id = "qwen"
file = "qwen.gguf"
vram_estimate = "6GiB"
affinity = ["beast"]
`);
    const config = loadConfig({ path, env: {} });
    expect(config.gatewayListen).toEqual({ hostname: "0.0.0.0", port: 31313 });
    expect(config.file.neurons[0]?.name).toBe("beast");
    expect(config.models[0]?.vram_estimate).toBe(6 * 1024 ** 3);
    expect(config.models[0]?.context_size).toBe(8192);
    expect(config.file.neuron.step_timeout_s).toBe(120);
    expect(config.file.eviction.idle_ttl_s).toBe(0);
    expect(Object.isFrozen(config.file.gateway)).toBe(true);
  });

  test("no file at all runs on defaults", () => {
    const dir = mkdtempSync(join(tmpdir(), "cortex-empty-"));
    const config = loadConfig({ cwd: dir, env: {} });
    expect(config.path).toBeUndefined();
    expect(config.neuronListen.port).toBe(13131);
    expect(config.file.neurons).toEqual([]);
  });

  test("a bad enum names the file, the key, what was expected and what was given", () => {
    const path = writeConfig(`[eviction]\nstrategy = "fifo"\n`);
    expect(problemsOf(() => loadConfig({ path, env: {} }))).toEqual([
      'cortex.toml: eviction.strategy: expected "lru" or "priority", got "fifo"',
    ]);
  });

  test("unknown keys are reported, not ignored", () => {
    const path = writeConfig(`[gateway]\nlistn = ":1"\n[bogus]\nx = 1\n`);
    const problems = problemsOf(() => loadConfig({ path, env: {} }));
    expect(problems).toContainEqual(
      expect.stringContaining('cortex.toml: gateway.listn: unknown key "listn"'),
    );
    expect(problems).toContainEqual(expect.stringContaining('cortex.toml: bogus: unknown key "bogus"'));
  });

  test("type errors and array elements carry the full key path", () => {
    const path = writeConfig(`[[models]]\nid = "a"\nfile = "a.gguf"\n[[models]]\nid = "b"\nfile = 3\n`);
    expect(problemsOf(() => loadConfig({ path, env: {} }))).toEqual([
      "cortex.toml: models[1].file: expected a string, got 3",
    ]);
  });

  test("neuron.prompt_cache_bytes: 2 GiB unless set, sizes or 0 to turn it off, errors name the key", () => {
    expect(loadConfig({ path: writeConfig(""), env: {} }).file.neuron.prompt_cache_bytes).toBe(2 * 1024 ** 3);
    const off = writeConfig(`[neuron]\nprompt_cache_bytes = 0\n`);
    expect(loadConfig({ path: off, env: {} }).file.neuron.prompt_cache_bytes).toBe(0);
    const half = writeConfig(`[neuron]\nprompt_cache_bytes = "512MiB"\n`);
    expect(loadConfig({ path: half, env: {} }).file.neuron.prompt_cache_bytes).toBe(512 * 1024 ** 2);
    const bad = writeConfig(`[neuron]\nprompt_cache_bytes = "lots"\n`);
    expect(problemsOf(() => loadConfig({ path: bad, env: {} }))[0]).toStartWith(
      "cortex.toml: neuron.prompt_cache_bytes: ",
    );
  });

  test("invalid TOML reports line and column", () => {
    const path = writeConfig(`[gateway]\nlisten = \n`);
    const [problem] = problemsOf(() => loadConfig({ path, env: {} }));
    expect(problem).toMatch(/^cortex\.toml:2:\d+: invalid TOML/);
  });

  test("environment overrides the file, and its errors name the variable", () => {
    const path = writeConfig(`[neuron]\nstep_timeout_s = 30\n`);
    expect(loadConfig({ path, env: { NEURON_TP_STEP_TIMEOUT_S: "5" } }).file.neuron.step_timeout_s).toBe(5);
    expect(loadConfig({ path, env: {} }).file.neuron.step_timeout_s).toBe(30);
    expect(problemsOf(() => loadConfig({ path, env: { NEURON_TP_STEP_TIMEOUT_S: "soon" } }))).toEqual([
      'environment NEURON_TP_STEP_TIMEOUT_S: expected a number, got "soon"',
    ]);
    expect(loadConfig({ path, env: { CORTEX_API_KEYS: "a, b" } }).file.gateway.api_keys).toEqual(["a", "b"]);
  });

  test("cross-checks: duplicate ids and aliases, affinity to unknown neurons", () => {
    const path = writeConfig(`
[[neurons]]
name = "a"
endpoint = "http://a:1"
[[models]]
id = "m"
file = "m.gguf"
affinity = ["b"]
[[models]]
id = "n"
aliases = ["m"]
file = "n.gguf"
`);
    const problems = problemsOf(() => loadConfig({ path, env: {} }));
    expect(problems).toContainEqual(
      'cortex.toml: models[0].affinity[0]: expected the name of a configured neuron (a), got "b"',
    );
    expect(problems).toContainEqual(
      expect.stringContaining('models[1].aliases[0]: expected a unique model id or alias, got "m"'),
    );
  });

  test("a profile needs a file or a source, and a source must name a hub model", () => {
    const path = writeConfig(`
[[models]]
id = "a"
[[models]]
id = "b"
source = "hf:org/repo:Q4_K_M"
[[models]]
id = "c"
source = "org/repo"
`);
    expect(problemsOf(() => loadConfig({ path, env: {} }))).toEqual([
      'cortex.toml: models[2].source: expected a model source like "hf:org/repo:Q4_K_M" or "hf:org/repo/file.gguf", got "org/repo"',
    ]);
    writeFileSync(path, `[[models]]\nid = "a"\n[[models]]\nid = "b"\nsource = "hf:org/repo:Q4_K_M"\n`);
    expect(problemsOf(() => loadConfig({ path, env: {} }))).toEqual([
      'cortex.toml: models[0].file: expected the GGUF file to load (or a source to pull it from, like "hf:org/repo:Q4_K_M")',
    ]);
    writeFileSync(path, `[[models]]\nid = "b"\nsource = "hf:org/repo:Q4_K_M"\n`);
    expect(
      loadConfig({ path, env: { HF_ENDPOINT: "http://mirror:8080", HF_TOKEN: "t" } }).file.neuron,
    ).toMatchObject({
      hf_endpoint: "http://mirror:8080",
      hf_token: "t",
    });
  });

  test("a separate models file is merged and validated with its own name", () => {
    const dir = mkdtempSync(join(tmpdir(), "cortex-models-"));
    writeFileSync(join(dir, "models.toml"), `[[models]]\nid = "x"\nfile = "x.gguf"\npriority = "high"\n`);
    writeFileSync(join(dir, "cortex.toml"), `[gateway]\nmodels_file = "models.toml"\n`);
    expect(problemsOf(() => loadConfig({ path: join(dir, "cortex.toml"), env: {} }))).toEqual([
      'models.toml: models[0].priority: expected a number, got "high"',
    ]);
    writeFileSync(join(dir, "models.toml"), `[[models]]\nid = "x"\nfile = "x.gguf"\n`);
    expect(loadConfig({ path: join(dir, "cortex.toml"), env: {} }).models.map((m) => m.id)).toEqual(["x"]);
  });

  test("a missing file is a clear error", () => {
    expect(problemsOf(() => loadConfig({ path: "/nonexistent/cortex.toml", env: {} }))).toEqual([
      "/nonexistent/cortex.toml: cannot read config file (ENOENT)",
    ]);
  });

  test("cortex.example.toml is valid, its values are the defaults, and it documents every key", () => {
    const examplePath = join(import.meta.dir, "../../cortex.example.toml");
    const example = loadConfig({ path: examplePath, env: {} });
    const defaults = loadConfig({ path: writeConfig(""), env: {} });
    // "Every key is shown with its default value": what the file sets equals what an empty file gets.
    expect(example.file).toEqual(defaults.file);
    const text = readFileSync(examplePath, "utf8");
    const sections = {
      log: LogSection,
      gateway: GatewaySection,
      eviction: EvictionSection,
      responses: ResponsesSection,
      state: StateSection,
      neurons: NeuronRef,
      models: ModelProfile,
      neuron: NeuronSection,
    };
    const undocumented = Object.entries(sections).flatMap(([section, schema]) =>
      Object.keys(schema.shape)
        .filter((key) => !new RegExp(`^#? ?${key} *=`, "m").test(text))
        .map((key) => `${section}.${key}`),
    );
    expect(undocumented).toEqual([]);
  });
});

describe("[state] and [responses] stores", () => {
  test("redis_url picks the Redis store unless [responses] store says memory; a bad URL names the key", () => {
    const shared = loadConfig({
      path: writeConfig('[state]\nredis_url = "redis://redis.internal:6379"\n'),
      env: {},
    });
    expect(shared.file.state).toEqual({
      redis_url: "redis://redis.internal:6379",
      key_prefix: "cortex:",
      timeout_s: 5,
    });
    expect(shared.file.responses.store).toBeUndefined();
    expect(shared.file.responses.max_entry_bytes).toBe(32 * 1024 * 1024);

    const path = writeConfig('[state]\nredis_url = "http://redis:6379"\n');
    const [problem] = problemsOf(() => loadConfig({ path, env: {} }));
    expect(problem).toContain("cortex.toml: state.redis_url");
    expect(problem).toContain("state.redis_url");
    expect(problem).toContain("redis://host:6379");
  });

  test('store = "redis" without [state] redis_url is an error naming both keys', () => {
    const path = writeConfig('[responses]\nstore = "redis"\n');
    const problems = problemsOf(() => loadConfig({ path, env: {} }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("responses.store");
    expect(problems[0]).toContain("state.redis_url");
  });
});

describe("value parsers", () => {
  test.each([
    ["6GiB", 6 * 1024 ** 3],
    ["512 MB", 512e6],
    ["1.5G", 1.5e9],
    [1024, 1024],
    ["12", 12],
  ] as const)("parseSize(%p) = %p", (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });
  test.each(["6 parsecs", "", "-1", "GiB"])("parseSize(%p) is not a size", (input) => {
    expect(parseSize(input)).toBeUndefined();
  });
  test("parseListen", () => {
    expect(parseListen(":8080")).toEqual({ hostname: "0.0.0.0", port: 8080 });
    expect(parseListen("127.0.0.1:1")).toEqual({ hostname: "127.0.0.1", port: 1 });
    expect(parseListen("[::1]:9")).toEqual({ hostname: "::1", port: 9 });
    expect(parseListen("nope")).toBeUndefined();
    expect(parseListen("host:99999")).toBeUndefined();
  });
});
