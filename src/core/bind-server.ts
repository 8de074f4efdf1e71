/**
 * Binding a server port exclusively. Elysia's Bun adapter asks for
 * `reusePort`, which lets a second instance bind the same address and the
 * kernel split the traffic between them; every server here binds without it,
 * and a port already taken is one clear line naming the setting and address.
 */
import { CortexError } from "./errors.ts";

export interface BindAddress {
  hostname: string;
  port: number;
}

/** Options every `listen()`/`Bun.serve()` here passes: one owner per port, no development error pages. */
export const EXCLUSIVE_BIND = { reusePort: false, development: false } as const;

/**
 * Runs `bind` and turns a failure to bind into a CortexError naming the
 * setting and address (`gateway.listen 127.0.0.1:31313: address already in use`).
 */
export function bindServer<T>(setting: string, address: BindAddress, bind: () => T): T {
  try {
    return bind();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
    const where = `${setting} ${host}:${address.port}`;
    if (code === "EADDRINUSE")
      throw new CortexError("unavailable", `${where}: address already in use`, { cause: error });
    if (code === "EACCES")
      throw new CortexError("forbidden", `${where}: permission denied`, { cause: error });
    if (code === "EADDRNOTAVAIL")
      throw new CortexError("unavailable", `${where}: address not available on this machine`, {
        cause: error,
      });
    throw error;
  }
}
