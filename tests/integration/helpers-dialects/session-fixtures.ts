/**
 * A recorded Claude Code session as fixtures: the conversation's own
 * `/v1/messages` bodies (those that carry tools; one per turn), scrubbed
 * (scrub-request.ts) except the billing block, whose exact shape is what
 * prefix-reuse tests and benchmarks are about. Shared by the recorders.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RecordedExchange } from "./recording-proxy.ts";
import { scrubRequest } from "./scrub-request.ts";

function sansMaxTokens(body: Record<string, unknown>): Record<string, unknown> {
  const { max_tokens: _, ...rest } = body;
  return rest;
}

/** The conversation's requests, in order, one per turn. */
export function conversationBodies(exchanges: readonly RecordedExchange[]): Array<Record<string, unknown>> {
  return (
    exchanges
      .filter(
        (e) => e.method === "POST" && e.path.startsWith("/v1/messages") && !e.path.includes("count_tokens"),
      )
      .map((e) => JSON.parse(e.body) as Record<string, unknown>)
      .filter((body) => Array.isArray(body.tools) && body.tools.length > 0)
      // A turn whose max_tokens does not fit the context is sent again with a smaller one; keep one per turn.
      .filter(
        (body, i, all) =>
          i === 0 || JSON.stringify(sansMaxTokens(body)) !== JSON.stringify(sansMaxTokens(all[i - 1]!)),
      )
  );
}

/** Scrubbed, with the billing block kept verbatim (it holds no secret: a version, an entry point and a hash). */
export function scrubKeepingBillingBlock(body: Record<string, unknown>): Record<string, unknown> {
  const system = body.system;
  const scrubbed = scrubRequest(body) as Record<string, unknown>;
  if (Array.isArray(system) && Array.isArray(scrubbed.system))
    scrubbed.system = scrubbed.system.map((block, b) => {
      const original = system[b] as { text?: string };
      return original.text?.startsWith("x-anthropic-billing-header:") ? original : block;
    });
  return scrubbed;
}

/** Writes each body as `name(i)` in `dir`; returns how many. */
export function writeSessionFixtures(
  dir: string,
  bodies: ReadonlyArray<Record<string, unknown>>,
  name: (index: number) => string,
): number {
  mkdirSync(dir, { recursive: true });
  bodies.forEach((body, i) => {
    writeFileSync(join(dir, name(i)), `${JSON.stringify(scrubKeepingBillingBlock(body), null, 1)}\n`);
  });
  return bodies.length;
}

/** A Codex session's own `/v1/responses` bodies (those with tools; one per request), in order. */
export function responsesBodies(exchanges: readonly RecordedExchange[]): Array<Record<string, unknown>> {
  return exchanges
    .filter((e) => e.method === "POST" && e.path === "/v1/responses")
    .map((e) => JSON.parse(e.body) as Record<string, unknown>)
    .filter((body) => Array.isArray(body.tools) && body.tools.length > 0);
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/**
 * The bodies with every UUID (session, thread, turn, installation and item
 * ids) replaced by a counter in order of first appearance, so the same id in
 * two requests stays the same, and each temp path by a fixed one. Run
 * before scrubbing: arguments and tool outputs are kept as sent.
 */
export function withStableIds(
  bodies: ReadonlyArray<Record<string, unknown>>,
  paths: ReadonlyArray<readonly [from: string, to: string]>,
): Array<Record<string, unknown>> {
  const ids = new Map<string, string>();
  const stable = (id: string): string => {
    const key = id.toLowerCase();
    let out = ids.get(key);
    if (out === undefined) {
      out = `00000000-0000-0000-0000-${String(ids.size + 1).padStart(12, "0")}`;
      ids.set(key, out);
    }
    return out;
  };
  return bodies.map((body) => {
    let text = JSON.stringify(body).replace(UUID, stable);
    for (const [from, to] of paths) text = text.split(from).join(to);
    return JSON.parse(text) as Record<string, unknown>;
  });
}
