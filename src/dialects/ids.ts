const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A random id in the style each API uses: `msg_01…`, `toolu_01…`, `chatcmpl-…`, `call_…`. */
export function newId(prefix: "msg_01" | "toolu_01" | "chatcmpl-" | "cmpl-" | "call_", length = 24): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = prefix;
  for (const byte of bytes) out += BASE62[byte % 62];
  return out;
}
