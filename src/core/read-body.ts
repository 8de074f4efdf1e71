/**
 * Reading a request's body within bounds, on both servers: its size counted
 * as it arrives and its time bounded (`body_timeout_s`): a body trickled in
 * a byte at a time keeps the idle timeout from firing and would hold its
 * connection for ever.
 */
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
export async function readBodyBounded(
  request: Request,
  maxBytes: number,
  timeoutMs: number | undefined,
): Promise<Uint8Array> {
  if (request.body === null) return new Uint8Array(0);
  const declared = request.headers.get("content-length");
  // The server delivers no more than a declared length, so that bounds the size: read natively
  // (a JS stream reader per request cost more CPU than parsing and routing the request).
  if (declared !== null && Number(declared) <= maxBytes) return readDeclared(request, timeoutMs);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let late = false;
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          late = true;
          reader.cancel().catch(() => {});
        }, timeoutMs);
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
    clearTimeout(timer);
  }
  return join(chunks, total);
}

async function readDeclared(request: Request, timeoutMs: number | undefined): Promise<Uint8Array> {
  const whole = request.arrayBuffer();
  if (timeoutMs === undefined) return new Uint8Array(await whole);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(slowBody(timeoutMs)), timeoutMs);
  });
  // Past the bound the read is left to end with the connection; its outcome no longer matters.
  whole.catch(() => {});
  try {
    return new Uint8Array(await Promise.race([whole, late]));
  } finally {
    clearTimeout(timer);
  }
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
