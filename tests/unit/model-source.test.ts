/**
 * Model sources and GGUF selection (src/core/model-source.ts), table-driven:
 * what `cortex models pull` and a profile's `source` accept, and which files
 * of a repository listing a tag or a name picks.
 */
import { describe, expect, test } from "bun:test";
import { formatModelSource, parseModelSource, selectGguf } from "../../src/core/model-source.ts";
import { renderPullLine, renderPullsInFlight } from "../../src/cli/render-pulls.ts";
import { nodeFlags } from "../../src/cli/commands/models-pull.ts";
import { profileFileOn } from "../../src/gateway/routing/profile-file.ts";
import type { PullStatus } from "../../src/core/pull-api.ts";

describe("parseModelSource", () => {
  test.each([
    ["hf:org/repo:Q4_K_M", { repo: "org/repo", revision: "main", tag: "Q4_K_M" }],
    ["org/repo:q8_0", { repo: "org/repo", revision: "main", tag: "q8_0" }],
    ["org/repo", { repo: "org/repo", revision: "main" }],
    ["org/repo@v1.0:Q4_0", { repo: "org/repo", revision: "v1.0", tag: "Q4_0" }],
    [
      "HF:org/repo/sub/model-Q4_K_M.gguf",
      { repo: "org/repo", revision: "main", file: "sub/model-Q4_K_M.gguf" },
    ],
  ])("%s", (spec, expected) => {
    expect(parseModelSource(spec)).toEqual(expected);
  });

  test.each(["org", "org/repo:", "org/repo/README.md", "org/repo/../x.gguf", "../repo:Q4", "org/re po:Q4"])(
    "refuses %s with what it expects",
    (spec) => {
      expect(() => parseModelSource(spec)).toThrow(/expected "org\/repo:QUANT"/);
    },
  );

  test("formats back to its canonical spelling", () => {
    expect(formatModelSource(parseModelSource("hf:org/repo:Q4_K_M"))).toBe("org/repo:Q4_K_M");
    expect(formatModelSource(parseModelSource("org/repo@dev/a.gguf"))).toBe("org/repo@dev/a.gguf");
  });
});

describe("selectGguf", () => {
  const listing = [
    "README.md",
    "model-Q4_K.gguf",
    "model-Q4_K_M.gguf",
    "model-Q8_0.gguf",
    "Q6_K/model-Q6_K-00001-of-00003.gguf",
    "Q6_K/model-Q6_K-00002-of-00003.gguf",
    "Q6_K/model-Q6_K-00003-of-00003.gguf",
    "mmproj-model-f16.gguf",
    "mmproj-model-Q8_0.gguf",
  ];
  const pick = (tag?: string, file?: string) =>
    selectGguf(listing, { repo: "org/repo", ...(tag ? { tag } : {}), ...(file ? { file } : {}) });

  test.each([
    ["q4_k_m", ["model-Q4_K_M.gguf"], "mmproj-model-f16.gguf"],
    ["Q4_K", ["model-Q4_K.gguf"], "mmproj-model-f16.gguf"],
    // The projector of the same quant where there is one.
    ["Q8_0", ["model-Q8_0.gguf"], "mmproj-model-Q8_0.gguf"],
    [
      "Q6_K",
      [
        "Q6_K/model-Q6_K-00001-of-00003.gguf",
        "Q6_K/model-Q6_K-00002-of-00003.gguf",
        "Q6_K/model-Q6_K-00003-of-00003.gguf",
      ],
      "mmproj-model-f16.gguf",
    ],
  ])("tag %s", (tag, parts, mmproj) => {
    expect(pick(tag)).toEqual({ parts, mmproj });
  });

  test("a split model named by any part brings every part", () => {
    expect(pick(undefined, "Q6_K/model-Q6_K-00002-of-00003.gguf").parts).toHaveLength(3);
  });

  test("a tag matching nothing lists the candidates; no tag with several models asks for one", () => {
    expect(() => pick("IQ2_XS")).toThrow(
      'no GGUF in org/repo matches the tag "IQ2_XS"; candidates: Q6_K/model-Q6_K-00001-of-00003.gguf, model-Q4_K.gguf, model-Q4_K_M.gguf, model-Q8_0.gguf',
    );
    expect(() => pick()).toThrow(/several GGUF models; name a quant tag/);
  });

  test("a tag in several names is ambiguous; a split with a missing part is refused", () => {
    expect(() => selectGguf(["a-Q4_0.gguf", "b-Q4_0.gguf"], { repo: "r/r", tag: "Q4_0" })).toThrow(
      'the tag "Q4_0" matches several GGUFs in r/r: a-Q4_0.gguf, b-Q4_0.gguf',
    );
    expect(() => selectGguf(["m-00001-of-00002.gguf"], { repo: "r/r" })).toThrow(
      "split into 2 parts but r/r lists 1",
    );
  });
});

describe("the file a sourced profile loads on a node", () => {
  const node = (files: string[]) => ({
    name: "n1",
    available: files.map((file) => ({ file, sizeBytes: 1, architecture: "llama", hasChatTemplate: true })),
  });
  const profile = { files: {}, source: "hf:org/repo:Q4_K_M" };
  test("found among the node's files by the same rules a pull uses", () => {
    expect(profileFileOn(profile, node(["org/repo/m-Q4_K_M.gguf", "org/repo/m-Q8_0.gguf"]))).toBe(
      "org/repo/m-Q4_K_M.gguf",
    );
    expect(profileFileOn(profile, node(["other/repo/m-Q4_K_M.gguf"]))).toBeUndefined();
    expect(profileFileOn({ ...profile, file: "x.gguf" }, node([]))).toBe("x.gguf");
  });
});

describe("pull rendering", () => {
  const status = (over: Partial<PullStatus>): PullStatus => ({
    id: "pull-1",
    source: "org/repo:Q4_K_M",
    state: "downloading",
    model: "org/repo/m-Q4_K_M.gguf",
    files: [],
    current: "org/repo/m-Q4_K_M.gguf",
    bytesDone: 512 * 1024 * 1024,
    bytesTotal: 2 * 1024 * 1024 * 1024,
    rate: 64 * 1024 * 1024,
    etaS: 24,
    startedAt: 0,
    ...over,
  });
  test("one line per node with bar, bytes, rate and ETA", () => {
    expect(renderPullLine("n1", status({}))).toBe(
      "n1  [#####...............]  25%  512.0 MiB / 2.0 GiB  64.0 MiB/s  ETA 24s  downloading m-Q4_K_M.gguf",
    );
    expect(renderPullLine("n1", status({ state: "failed", error: "checksum mismatch" }))).toBe(
      "n1  failed: checksum mismatch",
    );
    expect(renderPullLine("n2", undefined, "HTTP 404")).toBe("n2  failed: HTTP 404");
  });
  test("status lists only pulls in flight", () => {
    expect(renderPullsInFlight([{ node: "n1", pulls: [status({ state: "done" })] }])).toBe("");
    expect(renderPullsInFlight([{ node: "n1", pulls: [status({})] }])).toContain(
      "n1    org/repo:Q4_K_M  downloading",
    );
  });
  test("--node repeats and comma-separates", () => {
    expect(nodeFlags(["pull", "x/y:Q4", "--node", "a,b", "--node=c"])).toEqual(["a", "b", "c"]);
  });
});
