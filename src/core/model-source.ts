/**
 * Where a model comes from (`hf:org/repo:Q4_K_M`, `org/repo/file.gguf`) and
 * which GGUF files of a repository's listing it names. Pure: the neuron runs
 * it on the hub's listing before a pull, the gateway on a node's models
 * directory to tell whether the node already holds the pulled file.
 */
import { CortexError } from "./errors.ts";

export interface ModelSource {
  /** `org/repo`. */
  repo: string;
  revision: string;
  /** A quant tag (`Q4_K_M`), matched case-insensitively; absent with `file` or for "the only model". */
  tag?: string;
  /** An exact path inside the repository. */
  file?: string;
}

const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Parses `[hf:]org/repo[@revision][:TAG]` or `[hf:]org/repo[@revision]/path/to/file.gguf`.
 * Throws a CortexError (400) that says what was expected.
 */
export function parseModelSource(spec: string): ModelSource {
  const expected =
    'expected "org/repo:QUANT" (e.g. "bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M") or "org/repo/file.gguf", optionally prefixed "hf:"';
  const text = spec.trim().replace(/^hf:/i, "");
  const bad = () => new CortexError("invalid_request", `model source ${JSON.stringify(spec)}: ${expected}`);
  const parts = text.split("/");
  if (parts.length < 2) throw bad();
  const org = parts[0] ?? "";
  let name = parts[1] ?? "";
  let tag: string | undefined;
  let file: string | undefined;
  if (parts.length === 2) {
    const colon = name.indexOf(":");
    if (colon >= 0) {
      tag = name.slice(colon + 1);
      name = name.slice(0, colon);
      if (tag === "" || !/^[A-Za-z0-9._-]+$/.test(tag)) throw bad();
    }
  } else {
    file = parts.slice(2).join("/");
    if (!/\.gguf$/i.test(file) || parts.slice(2).some((part) => part === "" || part === "." || part === ".."))
      throw bad();
  }
  let revision = "main";
  const at = name.indexOf("@");
  if (at >= 0) {
    revision = name.slice(at + 1);
    name = name.slice(0, at);
    if (!/^[A-Za-z0-9._/-]+$/.test(revision)) throw bad();
  }
  if (!REPO_PART.test(org) || !REPO_PART.test(name)) throw bad();
  return {
    repo: `${org}/${name}`,
    revision,
    ...(tag === undefined ? {} : { tag }),
    ...(file === undefined ? {} : { file }),
  };
}

/** The canonical spelling of a source (what `/models/pulls` shows). */
export function formatModelSource(source: ModelSource): string {
  const rev = source.revision === "main" ? "" : `@${source.revision}`;
  if (source.file !== undefined) return `${source.repo}${rev}/${source.file}`;
  return `${source.repo}${rev}${source.tag === undefined ? "" : `:${source.tag}`}`;
}

/** Where a pulled repository's files live in a models directory: `org/repo/<path in the repo>`. */
export function pulledPath(source: Pick<ModelSource, "repo">, repoPath: string): string {
  return `${source.repo}/${repoPath}`;
}

export interface GgufSelection {
  /** The model's files in load order: one, or every part of a split GGUF (`-00001-of-0000N`). */
  parts: string[];
  /** A vision model's projector, pulled beside it. */
  mmproj?: string;
}

const SPLIT = /-(\d{5})-of-(\d{5})\.gguf$/i;

interface Group {
  /** The path a user names and llama.cpp loads: the file itself, or a split model's first part. */
  name: string;
  parts: string[];
  /** How many parts the names say there are (1 for a single file). */
  expected: number;
}

const isGguf = (path: string) => /\.gguf$/i.test(path);
const isMmproj = (path: string) => /mmproj/i.test(path.split("/").at(-1) ?? "");

/** Groups a listing's model GGUFs: a split model's parts become one group named by its first part. */
function groups(paths: readonly string[]): Group[] {
  const byKey = new Map<string, Group>();
  for (const path of [...paths].sort()) {
    if (!isGguf(path) || isMmproj(path)) continue;
    const split = SPLIT.exec(path);
    const key = split === null ? path : `${path.slice(0, split.index)}-of-${split[2]}`;
    let group = byKey.get(key);
    if (group === undefined) {
      group = { name: path, parts: [], expected: split === null ? 1 : Number(split[2]) };
      byKey.set(key, group);
    }
    group.parts.push(path);
  }
  return [...byKey.values()];
}

/** The path without its split suffix and extension: what a tag is matched against. */
function stem(name: string): string {
  const split = SPLIT.exec(name);
  return split === null ? name.replace(/\.gguf$/i, "") : name.slice(0, split.index);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * A tag matches a file when it appears in its path as a whole quant name:
 * after a separator (`-`, `.`, `_`, `/`) or at the start, and before `-`,
 * `.`, `/` or the end, so `Q4_K` does not match `Q4_K_M`.
 */
function matchesTag(name: string, tag: string): boolean {
  return new RegExp(`(^|[-._/])${escapeRegExp(tag)}($|[-./])`, "i").test(stem(name));
}

function pickMmproj(paths: readonly string[], tag: string | undefined): string | undefined {
  const all = paths.filter((path) => isGguf(path) && isMmproj(path)).sort();
  if (all.length <= 1) return all[0];
  // Several projectors (f16, bf16, q8_0, …): the one of the chosen quant, else f16, else the first.
  return (
    (tag === undefined ? undefined : all.find((path) => matchesTag(path, tag))) ??
    all.find((path) => /f16/i.test(path.split("/").at(-1) ?? "")) ??
    all[0]
  );
}

/**
 * Picks the model a source names among a repository's paths. A tag that
 * matches no model, or several, is an error that lists the candidates; a
 * split model whose parts are not all listed is an error too.
 */
export function selectGguf(paths: readonly string[], source: Pick<ModelSource, "repo" | "tag" | "file">) {
  const all = groups(paths);
  const names = all.map((group) => group.name);
  const list = (items: readonly string[]) => (items.length === 0 ? "none" : items.join(", "));
  let chosen: Group | undefined;
  if (source.file !== undefined) {
    const file = source.file;
    if (isMmproj(file) && paths.includes(file)) return { parts: [file] } satisfies GgufSelection;
    chosen = all.find((group) => group.parts.includes(file));
    if (chosen === undefined)
      throw new CortexError(
        "not_found",
        `${source.repo} has no file ${JSON.stringify(file)}; its GGUF models: ${list(names)}`,
      );
  } else if (source.tag !== undefined) {
    const tag = source.tag;
    const matches = all.filter((group) => matchesTag(group.name, tag));
    if (matches.length === 0)
      throw new CortexError(
        "not_found",
        `no GGUF in ${source.repo} matches the tag ${JSON.stringify(tag)}; candidates: ${list(names)}`,
      );
    if (matches.length > 1)
      throw new CortexError(
        "invalid_request",
        `the tag ${JSON.stringify(tag)} matches several GGUFs in ${source.repo}: ${list(matches.map((group) => group.name))}; name one file (org/repo/file.gguf)`,
      );
    chosen = matches[0];
  } else {
    if (all.length !== 1)
      throw new CortexError(
        all.length === 0 ? "not_found" : "invalid_request",
        all.length === 0
          ? `${source.repo} holds no GGUF model`
          : `${source.repo} holds several GGUF models; name a quant tag (org/repo:Q4_K_M) or a file: ${list(names)}`,
      );
    chosen = all[0];
  }
  if (chosen === undefined) throw new CortexError("internal", "no GGUF chosen");
  if (chosen.parts.length !== chosen.expected)
    throw new CortexError(
      "not_found",
      `${chosen.name} is split into ${chosen.expected} parts but ${source.repo} lists ${chosen.parts.length}`,
    );
  const mmproj = pickMmproj(paths, source.tag);
  return { parts: chosen.parts, ...(mmproj === undefined ? {} : { mmproj }) } satisfies GgufSelection;
}
