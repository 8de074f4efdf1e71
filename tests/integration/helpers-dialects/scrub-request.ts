/**
 * Turns a recorded Claude Code request into a fixture: the structure stays
 * exactly as sent (keys, block types, cache_control, tool schemas, sizes),
 * but prose (`text`, `description`, string `content`) becomes filler of the
 * same length made of the tiny model's corpus words, and identifiers in
 * `metadata.user_id` are zeroed. So the fixture carries no one's session
 * and no copy of Claude Code's prompts, and the tiny model reads it in far
 * fewer tokens than the original.
 */
import { TINY_CORPUS } from "../../../src/neuron/gguf/tiny-model.ts";

const PROSE_KEYS = new Set(["text", "description", "content"]);
const WORDS = TINY_CORPUS.split(/\s+/).filter((word) => /^[a-z]+$/.test(word));

/** Deterministic filler of exactly `length` characters. */
export function filler(length: number, seed = 0): string {
  let out = "";
  for (let i = seed; out.length < length; i++) out += `${WORDS[i % WORDS.length] ?? "river"} `;
  return out.slice(0, length);
}

function seedOf(text: string): number {
  return Number(BigInt(Bun.hash(text)) % 1000n);
}

function scrubUserId(value: string): string {
  try {
    const parsed = JSON.parse(value) as Record<string, unknown>;
    return JSON.stringify({
      ...parsed,
      ...(typeof parsed.device_id === "string" ? { device_id: "0".repeat(parsed.device_id.length) } : {}),
      ...(typeof parsed.session_id === "string"
        ? { session_id: "00000000-0000-0000-0000-000000000000" }
        : {}),
      ...(typeof parsed.account_uuid === "string" && parsed.account_uuid !== "" ? { account_uuid: "0" } : {}),
    });
  } catch {
    return "user_0";
  }
}

export function scrubRequest(value: unknown, key = ""): unknown {
  // Seeded by the text itself: the same text in two requests (a session's history) scrubs the same.
  if (typeof value === "string") return PROSE_KEYS.has(key) ? filler(value.length, seedOf(value)) : value;
  if (Array.isArray(value)) return value.map((item) => scrubRequest(item, key));
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === "user_id" && typeof v === "string") out[k] = scrubUserId(v);
    // Schema `properties` map names to schemas: a property called "description" is not prose.
    else if (key === "properties") out[k] = scrubRequest(v, "");
    else out[k] = scrubRequest(v, k);
  }
  return out;
}

/** A recorded request as the fixture file holds it. */
export interface RequestFixture {
  path: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/** Headers worth replaying: the API's own, not transport, auth or session ones. */
const KEPT_HEADERS = ["anthropic-beta", "anthropic-version", "content-type", "user-agent", "x-app"];

export function toRequestFixture(exchange: {
  path: string;
  headers: Record<string, string>;
  body: string;
}): RequestFixture {
  const headers = Object.fromEntries(
    KEPT_HEADERS.flatMap((name) =>
      exchange.headers[name] === undefined ? [] : [[name, exchange.headers[name]]],
    ),
  );
  return {
    path: exchange.path,
    headers,
    body: scrubRequest(JSON.parse(exchange.body)) as Record<string, unknown>,
  };
}
