/**
 * The one-line-per-request log: `key=value` in text, one JSON object in JSON,
 * and loggers that modules made at import time follow the configured level
 * and format (they are made before the config is read).
 */
import { describe, expect, test } from "bun:test";
import { createConsola, type LogObject } from "consola";
import { configureLogging, logFields, logger } from "../../src/core/logger.ts";

const FIELDS = {
  request_id: "req-1",
  dialect: "anthropic",
  model: "qwen",
  node: "beast",
  status: 200,
  stream: true,
  prompt_tokens: 12,
  completion_tokens: 40,
  ttft_ms: 85,
  duration_ms: 930,
  tok_s: 46.2,
  finish: "stop",
  error: undefined,
};

describe("request log line", () => {
  test("text: key=value pairs, undefined fields left out, spaces quoted", () => {
    const seen: LogObject[] = [];
    const log = createConsola({ level: 3, reporters: [{ log: (object) => seen.push(object) }] });
    logFields(log, "info", "chat", FIELDS);
    logFields(log, "info", "chat", { request_id: "req-2", model: "a model with spaces", status: 404 });
    expect(seen.map((object) => object.args[0])).toEqual([
      "chat request_id=req-1 dialect=anthropic model=qwen node=beast status=200 stream=true prompt_tokens=12 completion_tokens=40 ttft_ms=85 duration_ms=930 tok_s=46.2 finish=stop",
      'chat request_id=req-2 model="a model with spaces" status=404',
    ]);
    expect(seen.map((object) => object.type)).toEqual(["info", "info"]);
  });

  test("json: one object per line with typed fields, also from a logger made before configuration", () => {
    const early = logger("gateway");
    const lines: string[] = [];
    configureLogging({ level: "info", format: "json", write: (line) => lines.push(line) });
    logFields(early, "info", "chat", FIELDS);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith("\n")).toBe(true);
    const { time, ...line } = JSON.parse(lines[0] ?? "") as Record<string, unknown>;
    expect(typeof time).toBe("string");
    const { error: _error, ...defined } = FIELDS;
    expect(line).toEqual({ level: "info", tag: "gateway", msg: "chat", ...defined });
  });

  test("the configured level applies to loggers made before configuration", () => {
    const early = logger("router");
    const lines: string[] = [];
    configureLogging({ level: "warn", format: "json", write: (line) => lines.push(line) });
    logFields(early, "info", "chat", { request_id: "quiet" });
    logFields(early, "error", "chat", { request_id: "loud" });
    expect(lines.map((line) => (JSON.parse(line) as { request_id: string }).request_id)).toEqual(["loud"]);
  });
});
