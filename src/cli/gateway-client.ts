/**
 * HTTP client for the operator commands. Every failure becomes an ExitError
 * with a message an operator can act on (unreachable, unauthorised, refused).
 */
import type { z } from "zod";
import { EXIT, ExitError } from "./exit-codes.ts";

export interface GatewayClientOptions {
  url: string;
  token?: string | undefined;
  timeoutMs?: number;
}

export function defaultGatewayUrl(env: Record<string, string | undefined> = process.env): string {
  return env.CORTEX_GATEWAY_URL ?? "http://127.0.0.1:31313";
}

export async function gatewayRequest<S extends z.ZodType>(
  options: GatewayClientOptions,
  method: "GET" | "POST",
  path: string,
  schema: S,
  body?: unknown,
): Promise<z.infer<S>> {
  const url = new URL(path, options.url.endsWith("/") ? options.url : `${options.url}/`);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ExitError(
      `cannot reach the gateway at ${options.url} (${reason}); is \`cortex serve\` running? (set --gateway or CORTEX_GATEWAY_URL)`,
      EXIT.unreachable,
    );
  }
  const text = await response.text();
  if (response.status === 401 || response.status === 403)
    throw new ExitError(
      `the gateway at ${options.url} refused the admin token (HTTP ${response.status}); pass --token or set CORTEX_ADMIN_TOKEN`,
      EXIT.failure,
    );
  if (!response.ok)
    throw new ExitError(
      `${method} ${path} failed: HTTP ${response.status}: ${errorText(text)}`,
      EXIT.failure,
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ExitError(
      `${options.url} answered ${path} with something that is not JSON; is it a cortex gateway?`,
      EXIT.failure,
    );
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success)
    throw new ExitError(
      `${options.url} answered ${path} in an unexpected shape; is it a cortex gateway of this version?`,
      EXIT.failure,
    );
  return parsed.data;
}

function errorText(text: string): string {
  try {
    const json = JSON.parse(text) as { error?: { message?: string } | string };
    if (typeof json.error === "string") return json.error;
    if (json.error?.message) return json.error.message;
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.slice(0, 300);
}
