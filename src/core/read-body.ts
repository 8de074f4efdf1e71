/**
 * Reading a request's body within bounds, on both servers: its size counted
 * as it arrives and its time bounded (`body_timeout_s`): a body trickled in
 * a byte at a time keeps the idle timeout from firing and would hold its
 * connection for ever.
 */
import { deadlineIn } from "./deadline-sweep.ts";
import { CortexError } from "./errors.ts";

/** `body_timeout_s`, on both servers. */
export const DEFAULT_BODY_TIMEOUT_S = 60;

export function tooLarge(maxBytes: number, declared?: number): CortexError {
  return new CortexError(
    "request_too_large",
    declared === undefined
      ? `request body is over the limit of ${maxBytes} bytes`
      : `request body of ${declared} bytes is over the limit of ${maxBytes}`,
  );
}

/**
 * The body's bytes, counted as they arrive; past `maxBytes` the read is
 * cancelled and 413 thrown, past `timeoutMs` 408 (a body trickled in a byte
 * at a time keeps the idle timeout from firing, and would hold its
 * connection for ever).
 */
export function readBodyBounded(
  request: Request,
  maxBytes: number,
  timeoutMs: number | undefined,
): Promise<Uint8Array> {
  // The server delivers no more than a declared length, so that bounds the size: read natively
  // (a JS stream reader per request cost more CPU than parsing and routing the request).
  if (declaredWithin(request, maxBytes))
    return withinBodyTime(request.arrayBuffer(), timeoutMs).then((buffer) => new Uint8Array(buffer));
  return readCounted(request, maxBytes, timeoutMs);
}

const UTF8 = new TextDecoder();

/** The body as text (UTF-8), within the same bounds as readBodyBounded. */
export async function readBodyTextBounded(
  request: Request,
  maxBytes: number,
  timeoutMs: number | undefined,
): Promise<string> {
  // Natively decoded too: bytes, then a TextDecoder, cost a copy and a call more per request.
  if (declaredWithin(request, maxBytes)) return withinBodyTime(request.text(), timeoutMs);
  return UTF8.decode(await readCounted(request, maxBytes, timeoutMs));
}

/**
 * Whether the body has a declared length within `maxBytes`. Checked before
 * `request.body`, which makes a JS stream the native read would not need.
 */
function declaredWithin(request: Request, maxBytes: number): boolean {
  const declared = request.headers.get("content-length");
  return declared !== null && Number(declared) <= maxBytes;
}

/** A chunked body (or one over its declared limit): counted chunk by chunk, cut off at `maxBytes`. */
async function readCounted(
  request: Request,
  maxBytes: number,
  timeoutMs: number | undefined,
): Promise<Uint8Array> {
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let late = false;
  const timer =
    timeoutMs === undefined
      ? undefined
      : deadlineIn(timeoutMs, () => {
          late = true;
          reader.cancel().catch(() => {});
        });
  try {
    for (;;) {
      const { done, value } = await reader.read().catch((error: unknown) => {
        throw late ? slowBody(timeoutMs) : error;
      });
      if (late) throw slowBody(timeoutMs);
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      chunks.push(value);
    }
  } finally {
    timer?.cancel();
  }
  return join(chunks, total);
}

/** A native whole-body read raced against `body_timeout_s` (on the shared sweep, not a timer of its own). */
function withinBodyTime<T>(whole: Promise<T>, timeoutMs: number | undefined): Promise<T> {
  if (timeoutMs === undefined) return whole;
  // Past the bound the read is left to end with the connection; its outcome no longer matters.
  return new Promise((resolve, reject) => {
    const late = deadlineIn(timeoutMs, () => reject(slowBody(timeoutMs)));
    whole.then(
      (value) => {
        late.cancel();
        resolve(value);
      },
      (error: unknown) => {
        late.cancel();
        reject(error);
      },
    );
  });
}

function slowBody(timeoutMs: number | undefined): CortexError {
  return new CortexError(
    "body_timeout",
    `the request body did not arrive within ${(timeoutMs ?? 0) / 1000} s (body_timeout_s)`,
  );
}

function join(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0] ?? new Uint8Array(0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
