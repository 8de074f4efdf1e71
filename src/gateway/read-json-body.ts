/**
 * Reading a client's JSON body within bounds, before anything is routed:
 * the size is counted while the body streams in (a chunked body is cut off at
 * the limit, not read whole first), the media type must be JSON, and nesting
 * is bounded before `JSON.parse` builds a structure that recursive code
 * (schema validation, rendering the upstream body) would overflow the stack
 * on. Every refusal is a CortexError the caller renders in its dialect.
 */
import { CortexError } from "../core/errors.ts";
import { readBodyTextBounded, tooLarge } from "../core/read-body.ts";

/** Default `maxBytes`: bigger bodies get 413. */
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;
/**
 * Deepest nesting of arrays and objects accepted. Real requests (tool schemas
 * included) stay far below; tens of thousands of levels overflowed the stack.
 */
export const MAX_JSON_DEPTH = 128;

export interface ReadJsonOptions {
  maxBytes: number;
  /**
   * "required": the Content-Type must be JSON (the admin API: a browser can
   * send text/plain cross-site without a preflight). "if-present": a body
   * without a Content-Type is read as JSON too, as SDKs and curl scripts do.
   */
  contentType: "required" | "if-present";
  /** How long the whole body may take to arrive (`gateway.body_timeout_s`); undefined = no bound. */
  timeoutMs?: number | undefined;
}

function isJsonMediaType(value: string): boolean {
  const type = value.split(";", 1)[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

export async function readJsonBody(request: Request, options: ReadJsonOptions): Promise<unknown> {
  const contentType = request.headers.get("content-type");
  if (contentType === null ? options.contentType === "required" : !isJsonMediaType(contentType))
    throw new CortexError(
      "invalid_request",
      `expected Content-Type: application/json, got ${contentType === null ? "none" : JSON.stringify(contentType.slice(0, 100))}`,
    );
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > options.maxBytes) throw tooLarge(options.maxBytes, declared);
  const text = await readBodyTextBounded(request, options.maxBytes, options.timeoutMs);
  const depth = nestingDepth(text, MAX_JSON_DEPTH);
  if (depth > MAX_JSON_DEPTH)
    throw new CortexError(
      "invalid_request",
      `the request body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep`,
    );
  if (text.trim() === "")
    throw new CortexError("invalid_request", "the request body is empty; expected JSON");
  try {
    return JSON.parse(text);
  } catch {
    throw new CortexError("invalid_request", "the request body is not valid JSON");
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * The deepest nesting of `{`/`[` outside strings; stops early once past
 * `limit`. Malformed JSON is left to `JSON.parse` to report. Strings are
 * skipped with a native search for their closing quote: an agent's request is
 * mostly the text of its conversation, and a scan of every code unit in JS
 * cost more than JSON.parse itself.
 */
export function nestingDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      i = closingQuote(text, i);
      if (i < 0) return deepest;
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) depth--;
  }
  return deepest;
}

/**
 * Where the string opened at `open` ends: the next quote not escaped, that
 * is, not after an odd run of backslashes; -1 when the text ends first. (No
 * UTF-16 code unit of a non-ASCII character equals a quote or a backslash.)
 * Each run of backslashes is walked at most once, by the quote that ends it.
 */
function closingQuote(text: string, open: number): number {
  for (let at = text.indexOf('"', open + 1); at >= 0; at = text.indexOf('"', at + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return at;
  }
  return -1;
}
